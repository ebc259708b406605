"""vm1 on the stores: its XML and disk image (the seed's Step Five), and data written through it.

Why: the seed installs the VM onto the shared stores before the cluster
manages it (Step Five), so that whichever node runs it finds the same
config and the same disk.  ``install()`` does that on one node once both
stores are mounted there: the domain XML on the configstore, a raw disk
image on the imagestore.  vm1 is a qemu (TCG) domain with no OS: it sits in
its BIOS with its disk open (cache=none: O_DIRECT on OCFS2, which libvirt
accepts for live migration on a cluster filesystem).

``write_marker()`` / ``read_marker()`` are the crash test's "writer that
follows vm1": a block of random bytes written with O_DIRECT and fsync into
vm1's image on the node that runs it, before a kill, and read back (O_DIRECT,
from the disk, not a cache) wherever vm1 runs afterwards.  What was
acknowledged before a crash must still be there after fencing, OCFS2
recovery and migration.
"""

import secrets

IMAGE_MIB = 64
MARKER_BYTES = 4096
MARKER_AREA = 1 << 20            # markers start 1 MiB into the image, one block per cycle

DOMAIN_XML = """\
<domain type='qemu'>
  <name>%(name)s</name>
  <uuid>%(uuid)s</uuid>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='none'/>
      <source file='%(image)s'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <memballoon model='none'/>
  </devices>
</domain>
"""


class Vm1Error(RuntimeError):
    """vm1's files could not be installed, or a marker could not be written or read."""


class Vm1:
    """vm1's files: config (XML) on the configstore, image on the imagestore."""

    def __init__(self, name="vm1", config="/etc/xen/vm/vm1.xml",
                 image="/var/lib/xen/images/vm1.img",
                 uuid="6b0e6f0a-5a1c-4f3e-9d2b-1c0ffee00001"):
        self.name, self.config, self.image, self.uuid = name, config, image, uuid

    def xml(self):
        return DOMAIN_XML % {"name": self.name, "uuid": self.uuid, "image": self.image}

    def install(self, node):
        """Write the XML and a zeroed image through ``node`` (both stores mounted there)."""
        for argv, stdin in ((["dd", "of=" + self.config + ".new", "status=none", "conv=fsync"],
                             self.xml()),
                            (["mv", "-f", self.config + ".new", self.config], None),
                            (["dd", "if=/dev/zero", "of=" + self.image, "bs=1M",
                              "count=%d" % IMAGE_MIB, "conv=fsync", "status=none"], None)):
            result = node.ssh(argv, timeout=120, input=stdin)
            if result.returncode != 0:
                raise Vm1Error("%s: %s failed: %s" % (node.name, " ".join(argv),
                                                      result.stderr.strip()))

    def write_marker(self, node, index):
        """Write a new random marker block ``index`` through ``node``; return its hex."""
        marker = secrets.token_hex(MARKER_BYTES // 2)
        argv = ["dd", "of=" + self.image, "bs=%d" % MARKER_BYTES, "count=1",
                "seek=%d" % (MARKER_AREA // MARKER_BYTES + index), "iflag=fullblock",
                "oflag=direct", "conv=notrunc,fsync", "status=none"]
        result = node.ssh(argv, timeout=60, input=marker)
        if result.returncode != 0:
            raise Vm1Error("%s: writing marker %d failed: %s" % (node.name, index,
                                                                 result.stderr.strip()))
        return marker

    def read_marker(self, node, index):
        """The marker block ``index`` as ``node`` reads it from the disk (O_DIRECT)."""
        argv = ["dd", "if=" + self.image, "bs=%d" % MARKER_BYTES, "count=1",
                "skip=%d" % (MARKER_AREA // MARKER_BYTES + index), "iflag=direct",
                "status=none"]
        result = node.ssh(argv, timeout=60)
        if result.returncode != 0:
            raise Vm1Error("%s: reading marker %d failed: %s" % (node.name, index,
                                                                 result.stderr.strip()))
        return result.stdout
