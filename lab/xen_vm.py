"""ocf:hasf:VirtualMachine on a real Xen dom0, as Pacemaker would run it: one host boot.

Why one batch: a Xen host boots in ~50 s under emulation, so every step of
the agent's Xen path runs in one boot of lab/xen_host.py, in order, and the
tests (tests/test_xen_vm.py) assert on each step's result.  Steps:

- libvirt's libxl driver: probe, start (a PV domU, lab/xen_domu.py), monitor,
  probe while it runs;
- libvirtd stopped while the domain runs: a probe must not answer "not
  running" -- neither with xenfs mounted nor in a mount namespace without it
  (a dom0 whose /proc/xen is not mounted is still a Xen dom0) -- and a stop
  with ``stop_without_libvirtd=false`` must not claim success; later, with
  libvirtd stopped again, a stop (``stop_without_libvirtd`` on, the default)
  destroys the running domain with ``xl`` and succeeds once xl no longer
  lists it;
- libvirtd back: monitor; a stop that saves the domain's memory
  (``snapshot=``) and a start that restores it; a graceful stop
  (``shutdown_mode=paravirt``) of the restored domain, gone from Xen's own
  list;
- an ``ocf:heartbeat:Xen`` user's xmfile (an xl config) is refused with the
  way to convert it (libvirt's ``domxml-from-native xen-xl``), and the XML
  that way gives starts and stops under the agent;
- libvirtd stopped with the domains gone: probes (with and without xenfs)
  prove "not running" from Xen's view (``xl``).

``ocf_tester_steps``: ClusterLabs' ocf-tester on xen:///system, in a boot of
its own (tests/test_xen_ocf_tester.py, opt-in: ~2 min more of emulation).

The agent runs from hasf copied into the share (lab/hasf_lib.py), through
a launcher like an installed one (hasf/launcher.py).
"""

import os

from hasf.launcher import render
from lab.guest import Command
from lab.storage_path import ocf
from lab.xen_domu import domu_xml, make_initramfs_argv
from lab.xen_host import XenHost, start_libvirtd, toolstack

DOMAIN = "hasf-xen-vm1"
URI = "xen:///system"
INITRAMFS = "/run/hasf-domu.cpio.gz"
SNAPSHOTS = "/var/lib/hasf-snapshots"
XL_DOMAIN = "hasf-xen-xl"
CONVERTED = "/run/hasf-xen-xl.xml"
#: an ocf:heartbeat:Xen user's xmfile (an xl config) for the same kind of PV domU
XL_CONFIG = """name = "%(name)s"
kernel = "/boot/vmlinuz-%(kver)s"
ramdisk = "%(initrd)s"
extra = "console=hvc0 panic=-1"
memory = 128
vcpus = 1
on_poweroff = "destroy"
"""
#: Debian's site directories in dom0 (python3-libvirt), as an installed launcher has them
DOM0_SITE = ["/usr/local/lib/python3.11/dist-packages", "/usr/lib/python3/dist-packages"]

#: step -> the exit status it must have (None: anything but the ones in MUST_NOT)
EXPECTED = {
    "xl-info": 0, "virsh-list": 0, "initramfs": 0, "probe": 7, "start": 0, "xl-running": 0,
    "monitor": 0, "probe-running": 0, "libvirtd-down": 0, "probe-nolibvirtd": 1, "noxenfs-check": 0,
    "probe-nolibvirtd-noxenfs": 1, "stop-nolibvirtd": 1, "xl-still-running": 0,
    "libvirtd-up-0": 0, "libvirtd-up-1": 0, "libvirtd-up-2": 0, "monitor-back": 0,
    "snap-dir": 0, "snap-stop": 0, "snap-file": 0, "snap-xl-gone": 1, "snap-start": 0,
    "snap-file-gone": 0, "snap-monitor": 0, "stop": 0, "xl-gone": 1,
    "probe-stopped": 7, "libvirtd-down-again": 0, "probe-stopped-nolibvirtd": 7,
    "probe-stopped-nolibvirtd-noxenfs": 7, "xmfile-refused": 6, "xl-to-xml": 0,
    "xl-converted-start": 0, "xl-converted-running": 0, "xl-converted-stop": 0,
    "xl-converted-restart": 0, "stop-xl-destroy": 0, "xl-destroyed": 1,
}


def without_xenfs(argv):
    """argv run in a private mount namespace where /proc/xen is not mounted."""
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
            'umount -l /proc/xen && exec "$@"', "without-xenfs"] + list(argv)


#: sh script: end libvirtd (TERM), wait until it is gone.  PID 1 of a batch guest reaps no
#: orphans, so the daemon stays a zombie: gone means no process or a zombie.
STOP_LIBVIRTD = r"""pid=$(cat /run/libvirtd.pid) && kill "$pid" || exit 1
until ! kill -0 "$pid" 2>/dev/null || grep -q '^State:.*Z' "/proc/$pid/status"; do
    sleep 0.2
done
! virsh -c xen:///system uri >/dev/null 2>&1
"""


def stop_libvirtd():
    """libvirtd stopped (and gone) while Xen and its domains go on."""
    return Command(("timeout", "40", "sh", "-c", STOP_LIBVIRTD), timeout=50)


class Outcome:
    """Each step's GuestResult, by name, the host's serial console and timings (seconds:
    the whole batch; dom0_userland: dom0's uptime when its PID 1 ran; toolstack: Xen's
    daemons and libvirtd up)."""

    def __init__(self, steps, serial, seconds, dom0_userland, toolstack, expected=None):
        self.steps, self.serial, self.seconds = steps, serial, seconds
        self.dom0_userland, self.toolstack = dom0_userland, toolstack
        self.expected = EXPECTED if expected is None else expected

    @property
    def codes(self):
        return {name: result.returncode for name, result in self.steps.items()}

    def table(self):
        """One line per step: its exit status, the one wanted, its seconds."""
        return "\n".join("%-34s rc=%-4s (want %s) %6.1fs" % (
            name, r.returncode, self.expected.get(name), r.seconds)
            for name, r in self.steps.items())


class _Agent:
    """The agent and its domain's files in a host's share, and Commands that run it."""

    def __init__(self, host, hasf_lib):
        lib = host.copy_in(hasf_lib, "hasf-lib")
        with open(host.host_path("VirtualMachine"), "w") as handle:
            handle.write(render("/usr/bin/python3", "hasf.agents.virtual_machine", "main",
                                [lib] + DOM0_SITE))
        os.chmod(host.host_path("VirtualMachine"), 0o755)
        with open(host.host_path("domu.xml"), "w") as handle:
            handle.write(domu_xml(DOMAIN, "/boot/vmlinuz-" + host.image.kver, INITRAMFS))
        with open(host.host_path("domu.cfg"), "w") as handle:
            handle.write(XL_CONFIG % {"name": XL_DOMAIN, "kver": host.image.kver,
                                      "initrd": INITRAMFS})
        self.path = host.guest_path("VirtualMachine")
        self.xl_config = host.guest_path("domu.cfg")
        self.params = {"config": host.guest_path("domu.xml"), "hypervisor": URI,
                       "shutdown_mode": "paravirt"}

    def __call__(self, action, interval=0, **kw):
        return Command(tuple(ocf(self.path, action, interval, **dict(self.params, **kw))),
                       timeout=120)

    def without_xenfs(self, action):
        return Command(tuple(without_xenfs(self(action).argv)), timeout=120)


def steps(host, hasf_lib):
    """The (name, argv) steps of the scenario, with the agent and domain XML in the share."""
    vm = _Agent(host, hasf_lib)
    return [
        ("xl-info", ["xl", "info"]),
        ("virsh-list", ["virsh", "-c", URI, "list"]),
        ("initramfs", make_initramfs_argv("/run", INITRAMFS)),
        ("probe", vm("monitor")),
        ("start", vm("start")),
        ("xl-running", ["xl", "domid", DOMAIN]),
        ("monitor", vm("monitor", 10000)),
        ("probe-running", vm("monitor")),
        ("libvirtd-down", stop_libvirtd()),
        ("probe-nolibvirtd", vm("monitor")),
        ("noxenfs-check", without_xenfs(["test", "!", "-e", "/proc/xen/capabilities"])),
        ("probe-nolibvirtd-noxenfs", vm.without_xenfs("monitor")),
        ("stop-nolibvirtd", vm("stop", stop_without_libvirtd="false")),
        ("xl-still-running", ["xl", "domid", DOMAIN]),
    ] + [("libvirtd-up-%d" % i, argv) for i, argv in enumerate(start_libvirtd())] + [
        ("monitor-back", vm("monitor", 10000)),
        # snapshot: stop saves the domain's memory (libxl save), start restores it
        ("snap-dir", ["mkdir", "-p", SNAPSHOTS]),
        ("snap-stop", vm("stop", snapshot=SNAPSHOTS)),
        ("snap-file", ["find", SNAPSHOTS, "-name", "*.state", "-size", "+1M"]),
        ("snap-xl-gone", ["xl", "domid", DOMAIN]),
        ("snap-start", vm("start", snapshot=SNAPSHOTS)),
        ("snap-file-gone", ["find", SNAPSHOTS, "-name", "*.state"]),
        ("snap-monitor", vm("monitor", 10000)),
        ("stop", vm("stop")),
        ("xl-gone", ["xl", "domid", DOMAIN]),
        ("probe-stopped", vm("monitor")),
        # ocf:heartbeat:Xen's xmfile: refused with the way to convert it, and that way works
        ("xmfile-refused", vm("validate-all", xmfile=vm.xl_config)),
        ("xl-to-xml", ["sh", "-c", 'virsh -c %s domxml-from-native xen-xl "$1" > %s && '
                       'cat %s' % (URI, CONVERTED, CONVERTED), "xl-to-xml", vm.xl_config]),
        ("xl-converted-start", vm("start", config=CONVERTED)),
        ("xl-converted-running", ["xl", "domid", XL_DOMAIN]),
        ("xl-converted-stop", vm("stop", config=CONVERTED)),
        # libvirtd gone while a domain runs: stop destroys it with xl (stop_without_libvirtd)
        ("xl-converted-restart", vm("start", config=CONVERTED)),
        ("libvirtd-down-again", stop_libvirtd()),
        ("stop-xl-destroy", vm("stop", config=CONVERTED)),
        ("xl-destroyed", ["xl", "domid", XL_DOMAIN]),
        ("probe-stopped-nolibvirtd", vm("monitor")),
        ("probe-stopped-nolibvirtd-noxenfs", vm.without_xenfs("monitor")),
    ]


def ocf_tester_steps(host, hasf_lib):
    """ClusterLabs' ocf-tester on xen:///system (~2 min under emulation: its own boot)."""
    vm = _Agent(host, hasf_lib)
    return [
        ("initramfs", make_initramfs_argv("/run", INITRAMFS)),
        ("ocf-tester", Command(("env", "HA_RSCTMP=/run/resource-agents", "ocf-tester", "-v",
                                "-n", "ocft-xen", "-o", "config=%s" % vm.params["config"],
                                # ocf-tester's own 20 s operation timeout is too short for
                                # a first domU start under emulation (~20 s); Pacemaker's
                                # is the agent's advertised 90 s
                                "-o", "CRM_meta_timeout=90000",
                                "-o", "hypervisor=%s" % URI, "-o", "shutdown_mode=paravirt",
                                vm.path), timeout=400)),
    ]


def run(hasf_lib, xen=None, make_steps=steps):
    """Boot a Xen host once, bring up its toolstack, run make_steps' steps; the Outcome."""
    import time

    with XenHost("xenhost1", xen=xen) as host:
        scenario = make_steps(host, hasf_lib)
        setup = toolstack()
        started = time.monotonic()
        results = host.run_batch(setup + [argv for _, argv in scenario], timeout=1200)
        for result in results[:len(setup)]:
            result.check()
        outcome = Outcome({name: r for (name, _), r in zip(scenario, results[len(setup):])},
                          host.serial_log(), time.monotonic() - started,
                          host.last_results.get("userland_at"),
                          sum(r.seconds for r in results[:len(setup)]))
    return outcome
