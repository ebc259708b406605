"""A Xen test host: Debian's Xen hypervisor under qemu TCG, Debian's kernel as PV dom0.

Why: VirtualMachine's Xen paths (xen:///system through libvirt's libxl
driver, ``xl`` when libvirtd is gone, Xen detection) can only be trusted
against a real Xen.  A PV dom0 needs no hardware virtualisation, so qemu's
software emulation can run one here (lab/reports/xen-tcg-attempts.md has
what was tried and what failed).

``XenHost`` is a batch guest (lab/guest.py: one boot per ``run_batch``, the
9p share, results as JSON) that boots differently: qemu's multiboot loader
starts the hypervisor (``-kernel xen``), whose first module is the dom0
kernel with its command line and whose second is the initramfs
(``-initrd "vmlinuz ARGS,initrd"``; a comma inside ARGS is doubled for
qemu).  Facts found by booting it:

- ``-cpu max`` (with SMEP/SMAP, SVM) crashes dom0 at its first instruction
  after the hypervisor hands over (a page fault Xen cannot bounce to the
  guest); ``-cpu qemu64`` boots (~30 s to dom0's userland), but libvirt's
  libxl driver cannot name that CPU (an AMD without sep, vme: "Cannot find
  suitable CPU model") and libvirtd exits; ``-cpu Nehalem`` boots and
  libvirt names it.
- dom0's console is hvc0; Xen copies it to its own serial console (com1),
  which is qemu's serial log file, so the log has both.
- dom0's power-off goes through Xen's ACPI S5, which ends qemu like a plain
  guest's power-off, so a batch ends as usual.

The toolstack is started in the batch (``TOOLSTACK``): Debian's own
/etc/init.d/xen (xenfs, xenstored, xen-init-dom0, xenconsoled) and
libvirtd.  No systemd runs in a batch guest.
"""

from lab.guest import Command, Guest
from lab.qemu import qemu_value
from lab.xen_image import xen_image

#: Xen's command line: its console on the first serial port (qemu's log file), dom0's
#: memory fixed (no ballooning under emulation), one vCPU.  A crash reboots, which
#: -no-reboot turns into qemu's exit (a failed boot ends at once, not at the timeout).
XEN_CMDLINE = ("console=com1 com1=115200,8n1 dom0_mem=768M,max:768M dom0_max_vcpus=1 "
               "loglvl=all guest_loglvl=all")
#: an Intel model without SMEP/SMAP: see the module docstring
QEMU_CPU = "Nehalem"
#: a CPU with hardware-assisted paging for PVH/HVM domUs: TCG emulates AMD's SVM with
#: nested paging (not Intel's VMX), and Xen then lists "hvm hap".  Without rdtscp: TCG's
#: SVM has no nrip-save, and Xen cannot emulate an intercepted RDTSCP without it (the
#: PVH domU died at its first one: "SVM Insn len emulation failed ... 0f 01 f9").
QEMU_CPU_HAP = "Opteron_G3,+svm,+npt,-rdtscp"
#: libvirt's libxl driver names the host CPU from Xen's feature words, and none of
#: libvirt's AMD models fits the emulated one as Xen reports it ("Cannot find suitable
#: CPU model for given data": libvirtd exits).  A minimal AMD model in libvirt's CPU map
#: (a data file of the test host, made before libvirtd starts) lets it name one.
HAP_CPU_MODEL = """<cpus>
  <model name='hasf-tcg-amd'>
    <decode host='on' guest='off'/>
    <signature family='15' model='6'/>
    <vendor name='AMD'/>
%s  </model>
</cpus>
""" % "".join("    <feature name='%s'/>\n" % f for f in (
    "fpu", "tsc", "msr", "pae", "cx8", "cmov", "lm", "syscall", "nx", "sse", "sse2", "fxsr",
    "mmx"))
CPU_MAP = "/usr/share/libvirt/cpu_map"
HOST_MEMORY = 1280          # MiB: dom0's 768 + room for a few small domUs

#: dom0 kernel modules the toolstack and a PV domU's backends need
DOM0_MODULES = ("xenfs", "xen_evtchn", "xen_gntdev", "xen_gntalloc", "xen_privcmd")

LIBVIRTD_START = 90         # s: libvirtd loads its drivers slowly under emulation


def toolstack(libvirtd=True):
    """Commands that bring up the dom0 toolstack, as the distribution's boot would."""
    commands = [Command(("/etc/init.d/xen", "start"), timeout=120)]
    return commands + (start_libvirtd() if libvirtd else [])


def start_libvirtd():
    """Commands that start libvirtd (daemonised, /run/libvirtd.pid) and wait until it answers."""
    return [
        # the package makes these at install time; the image's /var/log is not the install's
        Command(("mkdir", "-p", "/var/log/libvirt/libxl", "/run/libvirt",
                 "/var/lib/libvirt/libxl"), timeout=10),
        Command(("libvirtd", "-d"), timeout=30),
        # libvirtd -d returns before the driver answers: wait for it (bounded)
        Command(("timeout", str(LIBVIRTD_START), "sh", "-c",
                 "until virsh -c xen:///system uri >/dev/null 2>&1; do sleep 1; done"),
                timeout=LIBVIRTD_START + 10),
    ]


def add_cpu_model(model_file):
    """Command (before libvirtd starts) that adds HAP_CPU_MODEL, written to model_file in
    the share, to libvirt's CPU map."""
    script = ('cp "$1" %s/x86_hasf-tcg-amd.xml && sed -i "s|<include '
              'filename=.x86_Opteron_G1.xml./>|&<include filename=\'x86_hasf-tcg-amd.xml\'/>|" '
              '%s/index.xml && grep -q hasf-tcg-amd %s/index.xml' % (CPU_MAP, CPU_MAP, CPU_MAP))
    return Command(("sh", "-c", script, "add-cpu-model", model_file), timeout=30)


class XenHost(Guest):
    """A batch guest booted as a Xen dom0 (see the module docstring).  cpu: qemu's -cpu
    (QEMU_CPU; QEMU_CPU_HAP for PVH/HVM domUs, with add_cpu_model before libvirtd)."""

    console = "hvc0"

    def __init__(self, name="xenhost", xen=None, memory=HOST_MEMORY, cpu=QEMU_CPU, **kw):
        self.xen = xen
        self.cpu = cpu
        super().__init__(name=name, image=xen.image if xen else None, memory=memory, **kw)

    def start(self):
        if self.xen is None:
            self.xen = xen_image()
            self.image = self.xen.image
        return super().start()

    def boot_argv(self):
        dom0 = "%s %s" % (qemu_value(self.image.kernel), qemu_value(self.kernel_append()))
        return ["-cpu", self.cpu, "-kernel", self.xen.hypervisor, "-append", XEN_CMDLINE,
                "-initrd", "%s,%s" % (dom0, qemu_value(self.image.initrd))]

    def start_batch(self, commands, modules=(), **kw):
        """Guest.start_batch with the dom0 modules loaded first."""
        wanted = list(DOM0_MODULES) + [m for m in modules if m not in DOM0_MODULES]
        return super().start_batch(commands, modules=wanted, **kw)
