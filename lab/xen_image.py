"""The Xen test host's image: Debian 12 with Xen 4.17, its toolstack and libvirt's libxl driver.

Why: hasf's VirtualMachine says "Xen by default on a dom0", so its Xen paths
must run against a real Xen.  This machine has no usable hardware
virtualisation, but a PV dom0 needs none: qemu TCG boots Debian's Xen
hypervisor (multiboot, qemu's ``-kernel``) with Debian's kernel as dom0
(lab/xen_host.py does the boot).  The image is lab/image.py's, built by its
``guest_image`` with another package list (so its own cache key), under its
own cache directory: image.py prunes old images per cache directory, and
the Xen image must neither evict the batch guests' image nor be evicted by
it.

The hypervisor itself is not a file qemu can read in the image: it is
extracted once from the root filesystem with debugfs (no loop mount; the
archive holds it gzipped, qemu's multiboot loader wants it plain) and kept
next to the image as ``xen``.
"""

import dataclasses
import gzip
import os
import subprocess
import tempfile

from lab.image import CACHE_ROOT, ensure_host_packages, guest_image

XEN_VERSION = "4.17"
HYPERVISOR_PACKAGE = "xen-hypervisor-%s-amd64" % XEN_VERSION
HYPERVISOR_GZ = "/boot/xen-%s-amd64.gz" % XEN_VERSION   # in the image, from HYPERVISOR_PACKAGE
XEN_CACHE_ROOT = os.path.join(CACHE_ROOT, "xen")

XEN_PACKAGES = (
    "linux-image-amd64",            # dom0 and domU kernel (PV)
    HYPERVISOR_PACKAGE,
    "xen-utils-%s" % XEN_VERSION,   # xl, xenstored, xenconsoled, xen-init-dom0
    "xenstore-utils",
    "libvirt-daemon",
    "libvirt-daemon-driver-xen",    # libvirt's libxl driver: xen:///system
    "libvirt-daemon-system",        # its users and config (the qemu driver refuses to load
                                    # without libvirt-qemu, and then libvirtd exits)
    "libvirt-clients",
    "python3-libvirt",
    "python3",
    "python3-lxml",
    "python3-psutil",
    "resource-agents",              # ocf:heartbeat:Xen and VirtualDomain, ocf-tester
    "libxml2-utils",                # xmllint: ocf-tester checks meta-data against the DTD
    "openssh-server",               # two hosts (lab/xen_migration.py): migration and
    "netcat-openbsd",               # fencing over xen+ssh://, the peer's agent over ssh
    "busybox-static",               # the domU's initramfs (lab/xen_domu.py)
    "cpio",
    "kmod",
    "util-linux",
    "mount",
    "iproute2",
    "procps",
    "psmisc",
    "e2fsprogs",
)

# command on the host -> Debian package providing it (besides image.py's)
XEN_HOST_TOOLS = {"debugfs": "e2fsprogs"}


@dataclasses.dataclass(frozen=True)
class XenImage:
    """The cached image (lab.image.Image) plus the plain hypervisor qemu boots."""

    image: object
    hypervisor: str


def _extract_hypervisor(image, target):
    """Dump HYPERVISOR_GZ out of the image's ext4 root, gunzip it to target (atomically)."""
    with tempfile.TemporaryDirectory(prefix="hasf-xen-") as scratch:
        dumped = os.path.join(scratch, "xen.gz")
        proc = subprocess.run(["debugfs", "-R", "dump %s %s" % (HYPERVISOR_GZ, dumped),
                               image.root], capture_output=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0 or not os.path.isfile(dumped) or not os.path.getsize(dumped):
            raise RuntimeError("cannot extract %s from %s: %s" % (
                HYPERVISOR_GZ, image.root, proc.stderr.decode("utf-8", "replace")[-2000:]))
        fd, partial = tempfile.mkstemp(prefix=".xen-", dir=os.path.dirname(target))
        try:
            with os.fdopen(fd, "wb") as out, gzip.open(dumped, "rb") as src:
                while True:
                    block = src.read(1 << 20)
                    if not block:
                        break
                    out.write(block)
            os.chmod(partial, 0o444)
            os.replace(partial, target)
        except BaseException:
            if os.path.exists(partial):
                os.unlink(partial)
            raise


def xen_image(cache_root=XEN_CACHE_ROOT):
    """The cached XenImage; built first if needed (minutes).

    Raises lab.debian.GuestImageUnavailable like ``guest_image`` when it
    cannot be built here for a reason that is not a bug.
    """
    image = guest_image(XEN_PACKAGES, cache_root=cache_root)
    hypervisor = os.path.join(image.directory, "xen")
    if not os.path.isfile(hypervisor):
        ensure_host_packages(XEN_HOST_TOOLS)
        _extract_hypervisor(image, hypervisor)
    return XenImage(image, hypervisor)
