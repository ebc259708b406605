"""A small PV domU for the Xen test host: Debian's kernel and a busybox initramfs.

Why: under emulation a domU must start in seconds, and it needs no disk to
be a real domain that libvirt starts, Xen schedules and a PV shutdown request
powers off.  The initramfs is made in dom0 at test time (busybox-static and
cpio are in the Xen image), so changing it needs no image rebuild.  Its PID 1
is busybox init: a PV shutdown request (libvirt ``shutdown --mode paravirt``)
makes the kernel run /sbin/poweroff, which busybox init answers by powering
off -- the graceful path VirtualMachine's stop tries first.
"""

from xml.sax.saxutils import escape

DOMU_MEMORY = 128   # MiB: Debian's kernel boots to busybox in it
READY = "hasf-domu-up"

_INIT = """#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
exec /bin/busybox init
"""
_INITTAB = "::sysinit:/bin/echo %s\n::shutdown:/bin/echo hasf-domu-down\n" % READY

#: sh script run in dom0: $1 = work dir, $2 = output initramfs (the test harness's
#: own shell, in the guest; the product never runs a shell)
MAKE_INITRAMFS = r"""set -eu
root="$1/domu-root"
rm -rf "$root"
mkdir -p "$root/bin" "$root/etc" "$root/dev"
cp /bin/busybox "$root/bin/busybox"
cat > "$root/init" <<'HASF_EOF'
%s
HASF_EOF
chmod 755 "$root/init"
printf '%%s' '%s' > "$root/etc/inittab"
mknod -m 600 "$root/dev/console" c 5 1
cd "$root"
find . | cpio -o -H newc --quiet | gzip -1 > "$2"
""" % (_INIT.strip(), _INITTAB)


def make_initramfs_argv(workdir, output):
    """argv (in dom0) that writes the domU's initramfs to output."""
    return ["sh", "-c", MAKE_INITRAMFS, "make-initramfs", workdir, output]


def domu_xml(name, kernel, initrd, memory=DOMU_MEMORY, uuid=None, pvh=False):
    """libvirt XML of a PV domU (libxl driver) booting kernel + initrd, no disk, no NIC.

    pvh: a PVH domU instead (hardware-assisted paging: needs hvm and hap in Xen's
    virt_caps); its log-dirty mode is HAP's, so it live-migrates on a hypervisor built
    without shadow paging, where a PV domU cannot (Debian's: lab/xen_migration.py)."""
    return """<domain type='xen'>
  <name>%(name)s</name>%(uuid)s
  <memory unit='MiB'>%(memory)d</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='%(machine)s'>%(ostype)s</type>
    <kernel>%(kernel)s</kernel>
    <initrd>%(initrd)s</initrd>
    <cmdline>console=hvc0 panic=-1</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <console type='pty'><target type='xen' port='0'/></console>
  </devices>
</domain>
""" % {"name": escape(name), "memory": memory, "kernel": escape(kernel),
       "initrd": escape(initrd),
       "machine": "xenpvh" if pvh else "xenpv", "ostype": "xenpvh" if pvh else "linux",
       "uuid": "\n  <uuid>%s</uuid>" % escape(uuid) if uuid else ""}
