"""The one Debian 12 guest image every lab node and test guest boots (cached).

Why: this machine has no loadable kernel modules and its /dev/kvm cannot run
real kernels, so everything that needs a kernel of its own (cluster nodes,
OCFS2 mounts, open-iscsi logins, LIO) runs in Debian's own kernel under qemu
TCG.  One image serves all of it (CI builds each image once on a fresh
machine, ~45-100 s, and the cache keeps only a couple), so the package list
is the union of what the lab's nodes and the tests' batch guests need.

``guest_image(packages=PACKAGES)`` builds once, with mmdebstrap from the
Debian archive the host's apt is configured with (read from
/etc/apt/sources.list*; nothing is hard-coded), a Debian 12 root filesystem,
and turns it into an ext4 image without loop mounts (``mkfs.ext4 -d``), plus
the kernel and a small initramfs (MODULES=list: virtio_pci, virtio_blk, ext4
- enough to mount the root disk; the root filesystem has every module).  The
result is cached under ``/var/cache/hasf-guest/<key>/`` (key: a hash of the
package list, IMAGE_VERSION and the guest-side files baked in), built into a
temp dir renamed into place (a killed build leaves no half cache) under an
flock (concurrent builders wait for the first).  mmdebstrap runs in a
private mount namespace, so a killed build leaves no /proc or /dev mounted
inside a stale build tree either.

PID 1 of every guest is INIT_SCRIPT, baked in and deliberately tiny: it
mounts the 9p share and runs ``<share>/.hasf-guest/runner.py``, which the
host writes before every boot.  A test batch guest writes a batch runner
(lab/guest.py), a lab node writes the node runner (lab/noderunner.py),
so neither needs an image rebuild when it changes.

Host Debian packages needed (HOST_PACKAGES): mmdebstrap, qemu-system-x86,
qemu-utils (qemu-img), e2fsprogs (mkfs.ext4 -d), util-linux (unshare),
coreutils (timeout); missing ones are installed with apt-get on first use.
"""

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time

from lab.debian import SUITE, GuestImageUnavailable, check_reachable, debian_mirrors
from lab.debian import ensure_host_packages as _ensure
from lab.process import kill_group, tail, wait_until

# Bump when the way the image is built changes (part of the cache key).
IMAGE_VERSION = "hasf-guest-1"
CACHE_ROOT = "/var/cache/hasf-guest"

# linux-image-amd64, not -cloud-amd64: the cloud kernel has no ocfs2 and no 9p.
PACKAGES = (
    "linux-image-amd64",
    "open-iscsi",
    "ocfs2-tools",
    "targetcli-fb",
    "python3",
    "python3-lxml",
    "python3-psutil",
    "kmod",
    "util-linux",
    "mount",
    "iproute2",
    "iputils-ping",
    "e2fsprogs",
    "procps",
    "psmisc",
    # device-mapper maps over iSCSI disks (the initiator's "idle dm map" case)
    "dmsetup",
    # ClusterLabs' agents (heartbeat/iscsi, Filesystem): the benchmark anchors inside guests
    "resource-agents",
    # the lab's cluster nodes (lab/node.py): corosync 3 + Pacemaker 2.1, sshd as the control channel
    "corosync",
    "pacemaker",
    "pacemaker-cli-utils",
    "openssh-server",
    # hasf-cib verify/apply in the nodes: xmllint checks the CIB against Pacemaker's schema
    "libxml2-utils",
    # the lab's whole scenario: the SAN (tgt on node2), by-path links for the LUN's
    # partitions (udev), vm1 as a libvirt qemu (TCG) domain, live-migrated over ssh
    "tgt",
    "udev",
    "libvirt-daemon",
    "libvirt-daemon-driver-qemu",
    "libvirt-clients",
    "qemu-system-x86",
    "python3-libvirt",
    "netcat-openbsd",
    # fence_ipmilan (and the ipmitool it runs): the ClusterLabs anchor of the lab's
    # failover benchmark
    "fence-agents",
    "ipmitool",
)

# command on the host -> Debian package providing it
HOST_TOOLS = {
    "mmdebstrap": "mmdebstrap",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "mkfs.ext4": "e2fsprogs",
    "unshare": "util-linux",
    "timeout": "coreutils",
}
HOST_PACKAGES = tuple(sorted(set(HOST_TOOLS.values())))

GUEST_SHARE = "/mnt/hasf"          # where the share is mounted in the guest
SHARE_TAG = "hasf"                 # 9p mount_tag
CONTROL = ".hasf-guest"            # batch/runner/results inside the share
GUEST_INIT = "/usr/local/sbin/hasf-guest-init"
USER_NET = {"address": "10.0.2.15/24", "gateway": "10.0.2.2"}   # qemu user-mode defaults
HOST_FROM_GUEST = "10.0.2.2"
BASE_MODULES = ("virtio_net", "sd_mod", "configfs")   # no udev in the guest: load what we need ourselves

BUILD_TIMEOUT = 1800
LOCK_TIMEOUT = 2400

# -- files baked into the image --------------------------------------------------
# PID 1 of the guest.  Deliberately tiny and stable: everything else is RUNNER,
# which the host writes to the share on every boot.
INIT_SCRIPT = r'''#!/usr/bin/python3 -Iu
"""PID 1 of a hasf test guest: mount the 9p share, run its batch runner, power off."""
import ctypes
import os
import subprocess
import traceback

SHARE = "%(share)s"
TAG = "%(tag)s"
RUNNER = os.path.join(SHARE, "%(control)s", "runner.py")


def power_off():
    try:
        os.sync()
    finally:
        ctypes.CDLL(None, use_errno=True).reboot(0x4321FEDC)  # RB_POWER_OFF
        os._exit(1)  # PID 1 exits -> panic -> panic=-1 and -no-reboot stop qemu


def mount(fstype, source, target, options="defaults"):
    os.makedirs(target, exist_ok=True)
    if os.path.ismount(target):  # the initramfs moved /proc, /sys, /dev here already
        return
    subprocess.run(["mount", "-n", "-t", fstype, "-o", options, source, target],
                   timeout=60, check=True)


def main():
    mount("proc", "proc", "/proc")
    mount("sysfs", "sysfs", "/sys")
    mount("devtmpfs", "devtmpfs", "/dev")
    for module in ("9pnet_virtio", "9p"):
        subprocess.run(["modprobe", module], timeout=60, check=True)
    mount("9p", TAG, SHARE, "trans=virtio,version=9p2000.L,msize=262144")
    with open(RUNNER) as handle:
        code = handle.read()
    exec(compile(code, RUNNER, "exec"), {"__name__": "hasf_runner", "SHARE": SHARE})


try:
    main()
except BaseException:
    traceback.print_exc()
finally:
    power_off()
''' % {"share": GUEST_SHARE, "tag": SHARE_TAG, "control": CONTROL}

# initramfs-tools: a small initramfs that loads what mounting /dev/vda (ext4) needs.
INITRAMFS_CONF = "MODULES=list\nRESUME=none\n"
INITRAMFS_HOOK = """#!/bin/sh
# hasf test guest: the initramfs only has to mount a virtio-blk ext4 root.
PREREQ=""
prereqs() { echo "$PREREQ"; }
case "$1" in prereqs) prereqs; exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
for module in virtio_pci virtio_blk crc32c_generic ext4; do
    force_load "$module"
done
"""


def ensure_host_packages(tools=None):
    """Install (apt-get, Debian's archive) the packages of any missing host tool."""
    return _ensure(HOST_TOOLS if tools is None else tools)


# -- the image -------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Image:
    """A cached guest image: raw ext4 root (read-only backing file), kernel, initrd."""

    directory: str
    root: str
    kernel: str
    initrd: str
    kver: str
    manifest: dict


def image_key(packages=PACKAGES):
    blob = json.dumps({"version": IMAGE_VERSION, "suite": SUITE,
                       "packages": sorted(set(packages)), "init": INIT_SCRIPT,
                       "initramfs": [INITRAMFS_CONF, INITRAMFS_HOOK]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _load_image(directory):
    try:
        with open(os.path.join(directory, "manifest.json")) as handle:
            manifest = json.load(handle)
    except (FileNotFoundError, ValueError):
        return None
    image = Image(directory, os.path.join(directory, "root.img"),
                  os.path.join(directory, "vmlinuz"), os.path.join(directory, "initrd.img"),
                  manifest["kver"], manifest)
    if all(os.path.isfile(p) for p in (image.root, image.kernel, image.initrd)):
        return image
    return None


class _FileLock:
    """An exclusive flock, waited for with a bound."""

    def __init__(self, path, timeout):
        self.path, self.timeout, self.fd = path, timeout, None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

        def take():
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
        try:
            wait_until(take, self.timeout, 1.0, "the lock %s (another image build)" % self.path)
        except BaseException:
            os.close(self.fd)
            raise
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # releases the flock


def _mounts_under(path):
    path = os.path.realpath(path).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            mountpoint = line.split()[4].replace("\\040", " ")
            if (mountpoint.rstrip("/") + "/").startswith(path):
                found.append(mountpoint)
    return found


def _safe_rmtree(path):
    """rmtree, but never through a mount point (a chroot's /dev or /proc)."""
    if not os.path.exists(path):
        return
    mounts = _mounts_under(path)
    if mounts:
        raise RuntimeError("refusing to remove %s: mounts below it: %s" % (path, mounts))
    shutil.rmtree(path)


def _run_logged(argv, log_path, timeout, what, lock_fd=None):
    """Run argv (own process group, output appended to log_path), bounded; raise on failure.

    Wrapped in ``timeout -s KILL`` so it ends even if this process is killed;
    lock_fd (the build flock) is inherited, so the lock stays held while an
    orphaned build step still writes into the build dir.
    """
    argv = ["timeout", "-s", "KILL", str(int(timeout) + 5)] + list(argv)
    with open(log_path, "ab") as log:
        log.write(("\n$ %s\n" % " ".join(argv)).encode())
        log.flush()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                pass_fds=() if lock_fd is None else (lock_fd,),
                                env=dict(os.environ, LC_ALL="C.UTF-8",
                                         DEBIAN_FRONTEND="noninteractive"))
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise RuntimeError("%s timed out after %ss; log tail:\n%s"
                           % (what, timeout, tail(log_path))) from None
    except BaseException:
        kill_group(proc)
        raise
    if code != 0:
        raise RuntimeError("%s failed (rc=%s); log tail:\n%s" % (what, code, tail(log_path)))




def _tree_bytes(root):
    total = 0
    for directory, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                pass
    return total


def _write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)


def _build(build, packages, mirrors, timeout, lock_fd=None):
    started = time.monotonic()
    log = os.path.join(build, "build.log")
    overlay = os.path.join(build, "overlay")
    rootfs = os.path.join(build, "rootfs")
    _write(os.path.join(overlay, "etc/initramfs-tools/conf.d/hasf-guest"), INITRAMFS_CONF)
    _write(os.path.join(overlay, "etc/initramfs-tools/hooks/hasf-guest"), INITRAMFS_HOOK, 0o755)
    _write(os.path.join(overlay, GUEST_INIT.lstrip("/")), INIT_SCRIPT, 0o755)
    os.makedirs(os.path.join(overlay, GUEST_SHARE.lstrip("/")))
    argv = ["unshare", "--mount", "--propagation", "private", "--",
            "mmdebstrap", "--mode=root", "--variant=apt", "--format=directory",
            "--components=main", "--include=" + ",".join(sorted(set(packages))),
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--setup-hook=sync-in %s /" % overlay,
            SUITE, rootfs] + list(mirrors)
    if any(c.isspace() for c in overlay):
        raise RuntimeError("build dir must not contain blanks: %r" % overlay)
    _run_logged(argv, log, timeout, "mmdebstrap", lock_fd)
    boot = os.path.join(rootfs, "boot")
    kernels = sorted(n for n in os.listdir(boot) if n.startswith("vmlinuz-"))
    if len(kernels) != 1:
        raise RuntimeError("expected one kernel in %s, found %s" % (boot, kernels))
    kver = kernels[0][len("vmlinuz-"):]
    initrd = os.path.join(boot, "initrd.img-" + kver)
    if not os.path.isfile(initrd):
        raise RuntimeError("mmdebstrap made no initramfs %s; log tail:\n%s"
                           % (initrd, tail(log)))
    shutil.copyfile(os.path.join(boot, kernels[0]), os.path.join(build, "vmlinuz"))
    shutil.copyfile(initrd, os.path.join(build, "initrd.img"))
    tree = _tree_bytes(rootfs)
    size_mib = (int(tree * 1.25) >> 20) + 1024
    root = os.path.join(build, "root.img")
    _run_logged(["mkfs.ext4", "-q", "-F", "-L", "hasf-root", "-m", "0", "-d", rootfs,
                 root, "%dM" % size_mib], log, 600, "mkfs.ext4 -d", lock_fd)
    _safe_rmtree(rootfs)
    _safe_rmtree(overlay)
    os.chmod(root, 0o444)
    manifest = {"key": os.path.basename(build), "version": IMAGE_VERSION, "suite": SUITE,
                "packages": sorted(set(packages)), "mirrors": mirrors, "kver": kver,
                "root_mib": size_mib, "tree_bytes": tree,
                "initrd_bytes": os.path.getsize(os.path.join(build, "initrd.img")),
                "build_seconds": round(time.monotonic() - started, 1),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return manifest


def guest_image(packages=PACKAGES, cache_root=CACHE_ROOT, build_timeout=BUILD_TIMEOUT,
                lock_timeout=LOCK_TIMEOUT):
    """The cached guest Image for ``packages``; build it first if needed (minutes).

    Raises GuestImageUnavailable when it cannot be built here for a reason
    that is not a bug (not root, no Debian mirror configured or reachable).
    """
    key = image_key(packages)
    final = os.path.join(cache_root, key)
    image = _load_image(final)
    if image is not None:
        return image
    if os.geteuid() != 0:
        raise GuestImageUnavailable("building the guest image needs root (mmdebstrap)")
    os.makedirs(cache_root, exist_ok=True)
    with _FileLock(os.path.join(cache_root, key + ".lock"), lock_timeout) as lock:
        image = _load_image(final)
        if image is not None:
            return image
        for name in os.listdir(cache_root):   # left by a killed build (we hold the lock)
            if name.startswith(".build-%s-" % key):
                _safe_rmtree(os.path.join(cache_root, name))
        if os.path.exists(final):              # no manifest: not a finished image
            _safe_rmtree(final)
        mirrors = debian_mirrors()
        check_reachable(mirrors)
        ensure_host_packages()
        build = tempfile.mkdtemp(prefix=".build-%s-" % key, dir=cache_root)
        try:
            manifest = _build(build, packages, mirrors, build_timeout, lock.fd)
            manifest["key"] = key
            _write(os.path.join(build, "manifest.json"), json.dumps(manifest, indent=1) + "\n")
            os.chmod(build, 0o755)
            os.rename(build, final)
        except BaseException:
            try:
                _safe_rmtree(build)
            except OSError:
                pass  # the next builder removes it (under the lock)
            raise
        _prune(cache_root, keep=final)
    image = _load_image(final)
    if image is None:
        raise RuntimeError("built %s but cannot load it" % final)
    return image


#: finished images kept in the cache besides a newly built one (older keys are removed)
KEEP_OLD_IMAGES = 1


def _prune(cache_root, keep):
    """Remove all but the newest KEEP_OLD_IMAGES other images (~720 MB each), each only
    if its lock is free at that moment (nobody is building it)."""
    others = []
    for name in os.listdir(cache_root):
        path = os.path.join(cache_root, name)
        if path != keep and not name.startswith(".") and os.path.isfile(
                os.path.join(path, "manifest.json")):
            others.append((os.path.getmtime(os.path.join(path, "manifest.json")), path))
    for _, path in sorted(others, reverse=True)[KEEP_OLD_IMAGES:]:
        fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            _safe_rmtree(path)
        finally:
            os.close(fd)
