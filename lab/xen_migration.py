"""Two Xen hosts: VirtualMachine's live migration both ways, a failed one, and fencing a domU.

Why: a Xen user's cluster moves a PV domU between two dom0s with libvirt's
libxl driver (the agent's migrate_to on the source, migrate_from on the
target), and fences a domU through xen+ssh://.  Neither can be trusted
without two real Xen hosts, so two lab/xen_host.py hosts boot at once under
TCG, joined by a guest-to-guest link (192.168.214.0/24, names xennode1 and
xennode2 in both /etc/hosts: libxl's migration listens on the target's
host name, so that name must be the link's address, not 127.0.1.1).

- The domU's libvirt XML sits on a disk both hosts mount read-only, as the
  seed keeps VM configs on a shared filesystem (an ext4 image here: two
  read-only mounts of one ext4 are safe; OCFS2 is lab/ocfs2_cluster.py's).
  The domU is kernel + initramfs (lab/xen_domu.py), built in each dom0 at
  the same path.
- root on each host reaches the other over ssh with one test key (the agent's
  ``migration_transport=ssh`` gives xen+ssh://xennode2/system; the fence
  device's URI is xen+ssh://root@xennode2/system).
- xennode1 runs the scenario (``steps``); it runs xennode2's side as Pacemaker
  would run it there: the agent on xennode2, over ssh.  xennode2's batch
  only brings up its toolstack and sshd, then waits until xennode1 says done
  (``PEER_DONE``), bounded.

The migrated domU is PVH, and the hosts run with a HAP-capable CPU
(lab/xen_host.py QEMU_CPU_HAP): Debian's Xen 4.17 is built without shadow
paging (``# CONFIG_SHADOW_PAGING is not set`` in /boot/xen-4.17-amd64.config),
and a PV domU's log-dirty mode is shadow paging's, so on Debian's hypervisor
a PV domU cannot live-migrate at all ("xc: Failed to enable logdirty: 95" in
libxl's log) -- on any hardware.  That is a real case too: the scenario tries
it first and the agent must fail with the domain on the source only.

Two failed migrations, both real: the PV one above, and one where xennode2's
free memory is taken by a ballast domain (created with xl) so libxl cannot
build the incoming domain; afterwards the domain must run on exactly one
side, the source.
"""

import os
import shlex
import subprocess
import tempfile
import time

from hasf.launcher import render
from lab.guest import Command, Disk
from lab.qemu import free_tcp_port
from lab.storage_path import ocf
from lab.xen_domu import domu_xml, make_initramfs_argv
from lab.xen_host import HAP_CPU_MODEL, QEMU_CPU_HAP, XenHost, add_cpu_model, toolstack
from lab.xen_vm import DOM0_SITE, URI, Outcome

NODES = {"xennode1": "192.168.214.1", "xennode2": "192.168.214.2"}
SHARED = "/srv/hasf-xen"                 # the read-only shared disk, in both dom0s
DOMAIN = "hasf-xen-mig"                  # PVH: live-migrates (HAP log-dirty)
PV_DOMAIN = "hasf-xen-pv"                # PV: cannot, on Debian's Xen (no shadow paging)
FENCED = "hasf-xen-fenced"               # a persistent domU on xennode2, fenced from xennode1
INITRAMFS = "/run/hasf-domu.cpio.gz"
PEER_DONE = "/run/hasf-xen-peer-done"
MIGRATEPORT = 49300                      # the way back: migrateport (tcp://xennode1:49300)
TIMEOUT_MS = "150000"                    # migrate_to / migrate_from, Pacemaker's op timeout

#: step -> the exit status it must have
EXPECTED = {
    "peer-ready": 0, "initramfs": 0,
    "pv-start-1": 0, "pv-migrate-fails": 1, "pv-xl-1": 0, "pv-xl-2": 1, "pv-probe-2": 7,
    "pv-stop-1": 0,
    "probe-1": 7, "probe-2": 7, "start-1": 0, "monitor-1": 0,
    "migrate-to-2": 0, "migrate-from-2": 0, "monitor-2": 0, "xl-gone-1": 1, "xl-on-2": 0,
    "probe-after-1": 7,
    "migrate-to-1": 0, "migrate-from-1": 0, "monitor-back-1": 0, "xl-gone-2": 1, "xl-on-1": 0,
    "probe-after-2": 7,
    "ballast-2": 0, "migrate-fails": 1, "failed-xl-1": 0, "failed-xl-2": 1,
    "failed-probe-1": 0, "failed-probe-2": 7, "failed-stop-2": 0, "failed-monitor-1": 0,
    "ballast-gone": 0,
    "fence-define": 0, "fence-id-before": 0, "fence-status-on": 0, "fence-reboot": 0,
    "fence-id-after": 0, "fence-off": 0, "fence-state-off": 0, "fence-status-off": 2,
    "fence-on": 0, "fence-state-on": 0, "fence-unknown": 1,
    "stop-1": 0, "probe-end-1": 7, "probe-end-2": 7,
}

#: sh run in each dom0 (the test harness's shell; the product runs none): $1 = the share.
#: /etc/hosts names both hosts by their link address, root's ssh key and client config,
#: sshd, the shared disk read-only.
HOST_SETUP = r"""set -eu
share="$1"; shift
{ echo "127.0.0.1 localhost"; for line in "$@"; do echo "$line"; done; } > /etc/hosts
install -d -m 700 /root/.ssh
install -m 600 "$share/ssh/id_ed25519" /root/.ssh/id_ed25519
install -m 644 "$share/ssh/id_ed25519.pub" /root/.ssh/authorized_keys
printf 'StrictHostKeyChecking accept-new\nBatchMode yes\nConnectTimeout 10\n' > /root/.ssh/config
ssh-keygen -A >/dev/null
mkdir -p /run/sshd
/usr/sbin/sshd
mkdir -p %(shared)s
mount -o ro,noload /dev/vdb %(shared)s
""" % {"shared": SHARED}

#: sh run on xennode2: a domain (xl) taking all free memory but 48 MiB, so libxl cannot
#: build a 128 MiB incoming domain there.  $1 = kernel, $2 = initramfs.
BALLAST = r"""set -eu
free=$(xl info | awk '/^free_memory/ {print $3}')
size=$((free - 48))
[ "$size" -ge 64 ] || { echo "only ${free} MiB free: no room for a ballast" >&2; exit 1; }
cat > /run/ballast.cfg <<EOF
name = "hasf-ballast"
kernel = "$1"
ramdisk = "$2"
extra = "console=hvc0"
memory = $size
EOF
xl create /run/ballast.cfg
xl info | awk '/^free_memory/ {print "free after ballast: " $3 " MiB"}'
"""


def _ssh_key(directory):
    """A passphrase-less test key pair (the hosts' root key), made on this machine."""
    os.makedirs(directory, exist_ok=True)
    key = os.path.join(directory, "id_ed25519")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hasf-xen-lab",
                    "-f", key], check=True, timeout=60, stdin=subprocess.DEVNULL)
    return key


def _shared_disk(path, files):
    """An ext4 image holding files ({name: text}), for both hosts to mount read-only."""
    with tempfile.TemporaryDirectory(prefix="hasf-xen-shared-") as root:
        for name, text in files.items():
            with open(os.path.join(root, name), "w") as handle:
                handle.write(text)
        with open(path, "wb") as handle:
            handle.truncate(16 << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-d", root, path], check=True, timeout=60,
                       capture_output=True)
    return path


class _Node:
    """One host's side: its agent and fence launchers in its share, and argv that run them
    there -- locally on xennode1, over ssh from xennode1 on xennode2."""

    def __init__(self, host, hasf_lib, key, local):
        self.name, self.local = host.name, local
        lib = host.copy_in(hasf_lib, "hasf-lib")
        for name, module, function in (("VirtualMachine", "hasf.agents.virtual_machine", "main"),
                                       ("fence_hasf_libvirt", "hasf.stonith.libvirt",
                                        "fence_main")):
            with open(host.host_path(name), "w") as handle:
                handle.write(render("/usr/bin/python3", module, function, [lib] + DOM0_SITE))
            os.chmod(host.host_path(name), 0o755)
        os.makedirs(host.host_path("ssh"), exist_ok=True)
        for suffix in ("", ".pub"):
            with open(key + suffix) as src, open(host.host_path("ssh", "id_ed25519" + suffix),
                                                 "w") as dst:
                dst.write(src.read())
        self.agent = host.guest_path("VirtualMachine")
        self.fence = host.guest_path("fence_hasf_libvirt")
        self.share = host.guest_path()
        with open(host.host_path("cpu-model.xml"), "w") as handle:
            handle.write(HAP_CPU_MODEL)
        self.cpu_model = host.guest_path("cpu-model.xml")
        self.kernel = "/boot/vmlinuz-" + host.image.kver
        self.params = {"config": os.path.join(SHARED, "domu.xml"), "hypervisor": URI,
                       "shutdown_mode": "paravirt", "migration_transport": "ssh"}

    def run(self, argv, timeout=120):
        """argv run on this node (from xennode1's batch)."""
        if not self.local:
            argv = ["ssh", self.name, "--", shlex.join(argv)]
        return Command(tuple(argv), timeout=timeout)

    def vm(self, action, interval=0, timeout=120, **kw):
        return self.run(ocf(self.agent, action, interval, **dict(self.params, **kw)), timeout)

    def migrate(self, action, source, target, **kw):
        return self.vm(action, timeout=int(TIMEOUT_MS) // 1000 + 30,
                       CRM_meta_migrate_source=source, CRM_meta_migrate_target=target,
                       CRM_meta_timeout=TIMEOUT_MS, **kw)

    def setup(self):
        """This host's part before the scenario: names, ssh, shared disk, libvirt's CPU
        map, the toolstack, the domU's initramfs."""
        hosts = ["%s %s" % (address, name) for name, address in NODES.items()]
        return [Command(("sh", "-c", HOST_SETUP, "host-setup", self.share) + tuple(hosts),
                        timeout=60),
                add_cpu_model(self.cpu_model)] + toolstack() + [
                Command(tuple(make_initramfs_argv("/run", INITRAMFS)), timeout=60)]


def fence(node, action, plug=FENCED, peer="xennode2"):
    """fence_hasf_libvirt on node against the domU plug on peer, through xen+ssh://.

    login_timeout 30 s, not fence-agents' 5: under emulation an ssh login plus libvirt's
    remote helper took over 5 s on a loaded machine (two dom0s on two cores)."""
    return node.run([node.fence, "--uri", "xen+ssh://root@%s/system" % peer, "--plug", plug,
                     "--action", action, "--power-timeout", "60", "--login-timeout", "30",
                     "--stonith-status-sleep", "1"], timeout=150)


def steps(one, two):
    """(name, Command) of the scenario, run in xennode1's batch (two's side over ssh)."""
    xl_domid = ["xl", "domid", DOMAIN]
    domstate = ["virsh", "-c", URI, "domstate", FENCED]
    return [
        ("peer-ready", Command(("timeout", "600", "sh", "-c",
                                "until ssh xennode2 virsh -c %s uri >/dev/null 2>&1; do "
                                "sleep 2; done" % URI), timeout=610)),
        ("initramfs", two.run(["test", "-s", INITRAMFS])),
        # a PV domU on Debian's Xen: live migration fails (no shadow paging), fail closed
        ("pv-start-1", one.vm("start", config=os.path.join(SHARED, "pv.xml"))),
        ("pv-migrate-fails", one.migrate("migrate_to", "xennode1", "xennode2",
                                         config=os.path.join(SHARED, "pv.xml"))),
        ("pv-xl-1", one.run(["xl", "domid", PV_DOMAIN])),
        ("pv-xl-2", two.run(["xl", "domid", PV_DOMAIN])),
        ("pv-probe-2", two.vm("monitor", config=os.path.join(SHARED, "pv.xml"))),
        ("pv-stop-1", one.vm("stop", config=os.path.join(SHARED, "pv.xml"))),
        ("probe-1", one.vm("monitor")),
        ("probe-2", two.vm("monitor")),
        ("start-1", one.vm("start")),
        ("monitor-1", one.vm("monitor", 10000)),
        # xennode1 -> xennode2: libvirt picks the data port (tcp://xennode2:4915x)
        ("migrate-to-2", one.migrate("migrate_to", "xennode1", "xennode2")),
        ("migrate-from-2", two.migrate("migrate_from", "xennode1", "xennode2")),
        ("monitor-2", two.vm("monitor", 10000)),
        ("xl-gone-1", one.run(xl_domid)),
        ("xl-on-2", two.run(xl_domid)),
        ("probe-after-1", one.vm("monitor")),
        # and back, with migrateport: the data goes to tcp://xennode1:49300
        ("migrate-to-1", two.migrate("migrate_to", "xennode2", "xennode1",
                                     migrateport=MIGRATEPORT)),
        ("migrate-from-1", one.migrate("migrate_from", "xennode2", "xennode1")),
        ("monitor-back-1", one.vm("monitor", 10000)),
        ("xl-gone-2", two.run(xl_domid)),
        ("xl-on-1", one.run(xl_domid)),
        ("probe-after-2", two.vm("monitor")),
        # a migration that fails: no memory for the domain on xennode2
        ("ballast-2", two.run(["sh", "-c", BALLAST, "ballast", two.kernel, INITRAMFS])),
        ("migrate-fails", one.migrate("migrate_to", "xennode1", "xennode2")),
        ("failed-xl-1", one.run(xl_domid)),
        ("failed-xl-2", two.run(xl_domid)),
        ("failed-probe-1", one.vm("monitor")),
        ("failed-probe-2", two.vm("monitor")),
        # Pacemaker stops a failed migration's resource on the target as well
        ("failed-stop-2", two.vm("stop")),
        ("failed-monitor-1", one.vm("monitor", 10000)),
        ("ballast-gone", two.run(["xl", "destroy", "hasf-ballast"])),
        # fencing a domU on xennode2 from xennode1, through xen+ssh://
        ("fence-define", two.run(["sh", "-c", 'virsh -c %s define "$1" && virsh -c %s start %s'
                                  % (URI, URI, FENCED), "define",
                                  os.path.join(SHARED, "fenced.xml")])),
        ("fence-id-before", two.run(["xl", "domid", FENCED])),
        ("fence-status-on", fence(one, "status")),
        ("fence-reboot", fence(one, "reboot")),
        ("fence-id-after", two.run(["xl", "domid", FENCED])),
        ("fence-off", fence(one, "off")),
        ("fence-state-off", two.run(domstate)),
        ("fence-status-off", fence(one, "status")),
        ("fence-on", fence(one, "on")),
        ("fence-state-on", two.run(domstate)),
        ("fence-unknown", fence(one, "off", plug="hasf-xen-typo")),
        ("stop-1", one.vm("stop")),
        ("probe-end-1", one.vm("monitor")),
        ("probe-end-2", two.vm("monitor")),
    ]


def diagnostics(one, two):
    """(name, Command) that show Xen's and libvirt's own account on both hosts: each
    step's output goes into the Outcome's ``logs`` (read when a step went wrong)."""
    logs = "tail -n 40 /var/log/libvirt/libxl/libxl-driver.log /var/log/libvirt/libxl/*.log; " \
           "xl dmesg | tail -n 30"
    return [("log-" + node.name, node.run(["sh", "-c", logs], timeout=60))
            for node in (one, two)]


def run(hasf_lib, xen=None, workdir=None, make_steps=steps):
    """Boot both Xen hosts, run the scenario from xennode1; an Outcome (xennode1's steps)."""
    from lab.xen_image import xen_image

    xen = xen or xen_image()
    with tempfile.TemporaryDirectory(prefix="hasf-xen-mig-", dir=workdir) as scratch:
        key = _ssh_key(os.path.join(scratch, "ssh"))
        kernel = "/boot/vmlinuz-" + xen.image.kver
        disk = _shared_disk(os.path.join(scratch, "shared.img"), {
            "domu.xml": domu_xml(DOMAIN, kernel, INITRAMFS, pvh=True),
            "pv.xml": domu_xml(PV_DOMAIN, kernel, INITRAMFS),
            "fenced.xml": domu_xml(FENCED, kernel, INITRAMFS)})
        shared = [Disk(disk, shared=True, readonly=True, serial="xenshared")]
        port = free_tcp_port()
        host1 = XenHost("xennode1", xen=xen, cpu=QEMU_CPU_HAP, disks=shared, lan_listen=port,
                        lan_address=NODES["xennode1"] + "/24")
        host2 = XenHost("xennode2", xen=xen, cpu=QEMU_CPU_HAP, disks=shared, lan_connect=port,
                        lan_address=NODES["xennode2"] + "/24")
        with host1, host2:
            one = _Node(host1, hasf_lib, key, local=True)
            two = _Node(host2, hasf_lib, key, local=False)
            scenario = make_steps(one, two)
            logs = diagnostics(one, two)
            setup1, setup2 = one.setup(), two.setup()
            wait = Command(("timeout", "1500", "sh", "-c",
                            "until [ -e %s ]; do sleep 1; done" % PEER_DONE), timeout=1510)
            started = time.monotonic()
            host1.start_batch(setup1 + [c for _, c in scenario + logs]
                              + [two.run(["touch", PEER_DONE])], timeout=1800)
            host2.start_batch(setup2 + [wait], timeout=1800)
            # a failure here leaves the with block, which kills xennode2 too
            results1 = host1.wait_batch()
            for result in results1[:len(setup1)]:
                result.check()
            results1[-1].check()            # xennode2 was told to end its batch
            for result in host2.wait_batch()[:len(setup2)]:
                result.check()
            done = results1[len(setup1):len(setup1) + len(scenario)]
            outcome = Outcome({name: r for (name, _), r in zip(scenario, done)},
                              host1.serial_log(), time.monotonic() - started,
                              host1.last_results.get("userland_at"),
                              sum(r.seconds for r in results1[:len(setup1)]), EXPECTED)
            shown = results1[len(setup1) + len(scenario):-1]
            outcome.logs = {name: r.stdout + r.stderr for (name, _), r in zip(logs, shown)}
            return outcome
