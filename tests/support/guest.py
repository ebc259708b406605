"""Real Debian guest kernels under qemu (TCG), for what the host kernel cannot do.

Why: this machine has no loadable kernel modules, so OCFS2 mounts, open-iscsi
logins (iscsi_tcp) and LIO targets (target_core_mod) cannot be tested on the
host.  A qemu guest with Debian's own kernel can do all three.  /dev/kvm here
is PVM and cannot run real kernels, so guests run under TCG (software
emulation): slow but real.  Measured here: the image build ~40 s (first
time only), one batch (boot, commands, power-off) ~10-13 s.

Two parts:

``guest_image(packages=PACKAGES)``
    Builds once, with mmdebstrap from the Debian archive the host's apt is
    configured with (read from /etc/apt/sources.list*; nothing is
    hard-coded), a Debian 12 root filesystem, and turns it into an ext4
    image without loop mounts (``mkfs.ext4 -d``), plus the kernel and a
    small initramfs (MODULES=list: virtio_pci, virtio_blk, ext4 - enough to
    mount the root disk; the root filesystem has every module).  The result
    is cached under ``/var/cache/hasf-guest/<key>/`` (key: a hash of the
    package list, IMAGE_VERSION and the guest-side files baked in), built
    into a temp dir renamed into place (a killed build leaves no half
    cache) under an flock (concurrent builders wait for the first).
    mmdebstrap runs in a private mount namespace, so a killed build leaves
    no /proc or /dev mounted inside a stale build tree either.

``Guest(Service)``
    One guest: a qcow2 overlay on the cached root image, direct kernel
    boot, a 9p share of a per-guest work dir (``guest.share`` on the host,
    ``GUEST_SHARE`` in the guest), user-mode networking (the host's
    127.0.0.1 is 10.0.2.2 in the guest), the serial console in a log file,
    optional extra raw disks (``Disk(path, shared=True)`` for a disk two
    guests write), an optional guest-to-guest link (``lan_listen=PORT`` on
    one guest, ``lan_connect=PORT`` on the other, ``lan_address=`` the
    guest's address on it), a unique MAC per NIC and iSCSI initiator name
    per guest.  ``start()`` only prepares (overlay, share); each
    ``run_batch()`` boots the guest once: a tiny init (baked into the image)
    mounts the share and runs the batch runner the host writes there
    (RUNNER below, so changing it needs no image rebuild), which loads the
    modules asked for, runs each argv (no shell), writes every result as
    JSON back to the share and powers off.  The overlay persists between
    batches of one Guest, so a later boot sees files an earlier one wrote.
    Every wait is bounded; on a timeout qemu is killed and the error carries
    the tail of the serial log.  ``stop()`` kills qemu and removes the
    overlay, share and logs.

Facts in the guest: no udev runs (devtmpfs only), so BASE_MODULES
(virtio_net, sd_mod, configfs) are loaded before the caller's modules and
configfs is mounted; NICs are eth0 (user net), eth1 (the lan), configured
by MAC; the root disk's -device comes first, so it is vda and extra disks
are vdb, vdc, ... (``Guest.disk_device(i)``); a lan joins exactly two
guests (qemu's socket netdev is point to point).  Each qemu runs under
``timeout -s KILL`` too, so even a killed test process leaves none behind
for long.

Host Debian packages needed (HOST_PACKAGES): mmdebstrap, qemu-system-x86,
qemu-utils (qemu-img), e2fsprogs (mkfs.ext4 -d), util-linux (unshare),
coreutils (timeout); missing ones are installed with apt-get on first use.
tests/test_support_guest.py also uses ocfs2-tools on the host.
"""

import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

from support.service import Service, kill_group
from support.waiting import wait_until

# Bump when the way the image is built changes (part of the cache key).
IMAGE_VERSION = "hasf-guest-1"
SUITE = "bookworm"
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
BOOT_ALLOWANCE = 120               # default batch timeout = this + the commands' timeouts
DEFAULT_COMMAND_TIMEOUT = 60

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

# -- the batch runner (runs in the guest, as PID 1, exec'd by INIT_SCRIPT) ------
RUNNER = r'''
"""hasf guest batch runner: set up, load modules, run argv lists, write JSON, return."""
import json
import os
import signal
import subprocess
import time

CONTROL = os.path.join(SHARE, "%(control)s")
OUT_DIR = "/run/hasf-guest"
LIMIT = 4 << 20


def log(message):
    print("hasf-guest: " + message, flush=True)


def uptime():
    with open("/proc/uptime") as handle:
        return float(handle.read().split()[0])


def write_json(name, data):
    path = os.path.join(CONTROL, name)
    with open(path + ".tmp", "w") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(path + ".tmp", path)


def quiet(argv, timeout=30):
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout)
        return proc.returncode, proc.stderr.decode("utf-8", "replace")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)


def mount(fstype, target, options="defaults", source=None):
    os.makedirs(target, exist_ok=True)
    if os.path.ismount(target):
        return 0, ""
    return quiet(["mount", "-n", "-t", fstype, "-o", options, source or fstype, target])


def read_output(path):
    try:
        with open(path, "rb") as handle:
            data = handle.read(LIMIT + 1)
    except FileNotFoundError:
        return ""
    text = data[:LIMIT].decode("utf-8", "replace")
    return text + ("\n[truncated]" if len(data) > LIMIT else "")


def run(index, command, env):
    out, err = ["%%s/%%d.%%s" %% (OUT_DIR, index, s) for s in ("out", "err")]
    result = {"argv": command["argv"], "returncode": None, "timed_out": False,
              "background": command["background"], "pid": None, "error": None}
    start = time.monotonic()
    stdin = subprocess.PIPE if command["input"] is not None else subprocess.DEVNULL
    log("run %%r" %% (command["argv"],))
    try:
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = subprocess.Popen(command["argv"], stdin=stdin, stdout=o, stderr=e, env=env,
                                    cwd=command["cwd"] or "/", start_new_session=True)
    except OSError as exc:
        result.update(returncode=127, error=str(exc), stdout="", stderr=str(exc), seconds=0.0)
        return result, None
    if stdin == subprocess.PIPE:
        try:
            proc.stdin.write(command["input"].encode())
            proc.stdin.close()
        except OSError:
            pass
    result["pid"] = proc.pid
    if command["background"]:
        result["seconds"] = 0.0
        return result, (proc, out, err)
    try:
        result["returncode"] = proc.wait(command["timeout"])
    except subprocess.TimeoutExpired:
        result["timed_out"] = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        result["returncode"] = proc.wait(10)
    result["seconds"] = round(time.monotonic() - start, 3)
    result["stdout"], result["stderr"] = read_output(out), read_output(err)
    return result, None


def setup(batch, results):
    for fstype, target, options in (("devpts", "/dev/pts", "gid=5,mode=620"),
                                    ("tmpfs", "/dev/shm", "mode=1777"),
                                    ("tmpfs", "/run", "mode=755"),
                                    ("tmpfs", "/tmp", "mode=1777")):
        mount(fstype, target, options)
    for path in ("/run/lock", OUT_DIR):
        os.makedirs(path, exist_ok=True)
    with open("/proc/sys/kernel/hostname", "w") as handle:
        handle.write(batch["hostname"])
    with open("/etc/hostname", "w") as handle:
        handle.write(batch["hostname"] + "\n")
    with open("/etc/hosts", "w") as handle:
        handle.write("127.0.0.1 localhost\n127.0.1.1 %%s\n" %% batch["hostname"])
    if os.path.isdir("/etc/iscsi"):
        with open("/etc/iscsi/initiatorname.iscsi", "w") as handle:
            handle.write("InitiatorName=%%s\n" %% batch["initiator"])
    for name in batch["modules"]:
        code, err = quiet(["modprobe", name], timeout=120)
        results["modules"].append({"name": name, "returncode": code, "stderr": err})
    if os.path.isdir("/sys/kernel/config"):
        mount("configfs", "/sys/kernel/config")
    quiet(["ip", "link", "set", "lo", "up"])
    for nic in batch["nics"]:
        results["network"].append(configure_nic(nic))


def configure_nic(nic):
    found = None
    for name in sorted(os.listdir("/sys/class/net")):
        with open("/sys/class/net/%%s/address" %% name) as handle:
            if handle.read().strip().lower() == nic["mac"].lower():
                found = name
    state = {"mac": nic["mac"], "ifname": found, "errors": []}
    if found is None:
        state["errors"].append("no interface with MAC %%s" %% nic["mac"])
        return state
    steps = [["ip", "link", "set", found, "up"],
             ["ip", "addr", "add", nic["address"], "dev", found]]
    if nic.get("gateway"):
        steps.append(["ip", "route", "add", "default", "via", nic["gateway"], "dev", found])
    for argv in steps:
        code, err = quiet(argv)
        if code != 0:
            state["errors"].append("%%s: %%s" %% (" ".join(argv), err.strip()))
    return state


def main():
    with open(os.path.join(CONTROL, "batch.json")) as handle:
        batch = json.load(handle)
    results = {"modules": [], "network": [], "commands": [], "done": False,
               "userland_at": uptime()}
    setup(batch, results)
    write_json("results.json", results)
    env = dict(batch["env"])
    background = []
    for index, command in enumerate(batch["commands"]):
        result, bg = run(index, command, env)
        results["commands"].append(result)
        if bg is not None:
            background.append((result, bg))
        write_json("results.json", results)
    for result, (proc, out, err) in background:
        result["returncode"] = proc.poll()
        result["stdout"], result["stderr"] = read_output(out), read_output(err)
    results["done"] = True
    results["finished_at"] = uptime()
    write_json("results.json", results)
    log("batch done")
    os.sync()
    quiet(["mount", "-n", "-o", "remount,ro", "/"])


main()
''' % {"control": CONTROL}


class GuestImageUnavailable(RuntimeError):
    """The guest image cannot be built here for a reason that is not a bug
    (no root, no Debian mirror configured or reachable)."""


class GuestError(RuntimeError):
    """A guest batch failed (qemu did not start, the runner crashed, a module
    the caller asked for did not load)."""


class GuestTimeout(GuestError):
    """A guest batch did not finish in time (qemu was killed)."""


# -- apt sources ---------------------------------------------------------------
def _deb822_stanzas(text):
    stanza, key = {}, None
    for line in text.splitlines() + [""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if stanza:
                yield stanza
            stanza, key = {}, None
        elif line[0] in " \t" and key:
            stanza[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            stanza[key] = value.strip()


def _one_line_entries(text):
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        line = re.sub(r"\[[^\]]*\]", " ", line[4:])
        fields = line.split()
        if len(fields) >= 3:
            yield fields[0], [fields[1]], fields[2:]


def debian_mirrors(suite=SUITE, apt_dir="/etc/apt"):
    """One-line ``deb URI SUITE main`` entries for ``suite`` and its -updates and
    -security suites, as configured for the host's apt (main only)."""
    entries = []
    files = []
    if os.path.isfile(os.path.join(apt_dir, "sources.list")):
        files.append(os.path.join(apt_dir, "sources.list"))
    parts = os.path.join(apt_dir, "sources.list.d")
    if os.path.isdir(parts):
        files += [os.path.join(parts, n) for n in sorted(os.listdir(parts))]
    for path in files:
        with open(path, errors="replace") as handle:
            text = handle.read()
        if path.endswith(".list"):
            entries += list(_one_line_entries(text))
        elif path.endswith(".sources"):
            for stanza in _deb822_stanzas(text):
                if stanza.get("enabled", "yes").lower() == "no":
                    continue
                if "deb" not in stanza.get("types", "").split():
                    continue
                entries.append((stanza.get("uris", "").split()[0] if stanza.get("uris") else "",
                                stanza.get("suites", "").split(),
                                stanza.get("components", "").split()))
    wanted = {suite, suite + "-updates", suite + "-security"}
    lines = []
    for uri, suites, components in entries:
        if not uri or "main" not in components:
            continue
        for name in suites:
            line = "deb %s %s main" % (uri, name)
            if name in wanted and line not in lines:
                lines.append(line)
    if not any(line.split()[2] == suite for line in lines):
        raise GuestImageUnavailable("no Debian %s mirror with 'main' configured in %s/sources.list*"
                                    % (suite, apt_dir))
    return lines


def _check_reachable(mirrors, timeout=15):
    for line in mirrors:
        _, uri, suite, _ = line.split()
        if not uri.startswith(("http://", "https://")):
            continue
        url = "%s/dists/%s/Release" % (uri.rstrip("/"), suite)
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"),
                                        timeout=timeout):
                pass
        except urllib.error.HTTPError:
            pass  # it answered: reachable (a real archive problem fails the build)
        except (urllib.error.URLError, OSError) as exc:
            raise GuestImageUnavailable("the Debian mirror is not reachable (%s: %s)"
                                        % (url, exc)) from exc


# -- host packages ---------------------------------------------------------------
def _apt_get(*args, timeout=900):
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(["apt-get", "-q", "-o", "DPkg::Lock::Timeout=300"] + list(args),
                          capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)


def ensure_host_packages(tools=HOST_TOOLS):
    """Install (apt-get, Debian's archive) the packages of any missing host tool."""
    missing = sorted({pkg for tool, pkg in tools.items() if not shutil.which(tool)})
    if not missing:
        return []
    if os.geteuid() != 0:
        raise GuestImageUnavailable("needs root to install %s" % " ".join(missing))
    install = ("install", "-y", "--no-install-recommends") + tuple(missing)
    proc = _apt_get(*install)
    if proc.returncode != 0:
        update = _apt_get("update", timeout=600)
        if update.returncode != 0:
            raise GuestImageUnavailable("apt-get update failed: %s" % update.stderr[-2000:])
        proc = _apt_get(*install)
    if proc.returncode != 0:
        raise RuntimeError("apt-get install %s failed: %s" % (" ".join(missing),
                                                              proc.stderr[-2000:]))
    still = sorted(tool for tool in tools if not shutil.which(tool))
    if still:
        raise RuntimeError("installed %s but still missing: %s" % (missing, still))
    return missing


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
                           % (what, timeout, _tail(log_path))) from None
    except BaseException:
        kill_group(proc)
        raise
    if code != 0:
        raise RuntimeError("%s failed (rc=%s); log tail:\n%s" % (what, code, _tail(log_path)))


def _tail(path, chars=4000):
    if not path:
        return "(none)"
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - chars))
            return handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return "(no %s)" % path


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
                           % (initrd, _tail(log)))
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
        _check_reachable(mirrors)
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


# -- guests ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Disk:
    """An extra raw disk for a guest (vdb, vdc, ... in the order given).

    shared: several guests may open it read-write at once (share-rw=on).
    """

    path: str
    shared: bool = False
    readonly: bool = False
    serial: str = ""


@dataclasses.dataclass(frozen=True)
class Command:
    """One command of a batch: argv (no shell), its own timeout, optional stdin
    text, working directory; background=True starts it and goes on (its output
    so far and returncode-or-None are collected when the batch ends)."""

    argv: tuple
    timeout: float = DEFAULT_COMMAND_TIMEOUT
    input: str = None
    cwd: str = None
    background: bool = False


@dataclasses.dataclass
class GuestResult:
    """What one command did in the guest."""

    argv: list
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    background: bool = False
    pid: int = None
    error: str = None

    @property
    def ok(self):
        return self.returncode == 0 and not self.timed_out

    def check(self):
        """self, or GuestError with what the command printed."""
        if not self.ok:
            raise GuestError("in the guest %r: rc=%s%s\nstdout:\n%s\nstderr:\n%s" % (
                self.argv, self.returncode, " (timed out)" if self.timed_out else "",
                self.stdout[-3000:], self.stderr[-3000:]))
        return self


def _command(spec):
    if isinstance(spec, Command):
        command = spec
    elif isinstance(spec, (list, tuple)):
        command = Command(tuple(spec))
    else:
        raise TypeError("a command is an argv list or a Command, not %r" % (spec,))
    if not command.argv or not all(isinstance(a, str) for a in command.argv):
        raise TypeError("argv must be a non-empty list of str: %r" % (command.argv,))
    return {"argv": list(command.argv), "timeout": command.timeout, "input": command.input,
            "cwd": command.cwd, "background": command.background}


_macs_lock = threading.Lock()
_macs_used = set()


def _unique_mac():
    with _macs_lock:
        while True:
            mac = "52:54:00:%02x:%02x:%02x" % tuple(os.urandom(3))
            if mac not in _macs_used:
                _macs_used.add(mac)
                return mac


def free_tcp_port():
    """A currently free TCP port on 127.0.0.1 (for lan_listen/lan_connect)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tcp_listening(port, host="127.0.0.1"):
    """Whether something listens on host:port, read from /proc/net/tcp (no connect:
    a qemu socket netdev would take a probe connection as its peer)."""
    want = "%s:%04X" % ("".join("%02X" % int(b) for b in reversed(host.split("."))), port)
    with open("/proc/net/tcp") as handle:
        for line in handle.readlines()[1:]:
            fields = line.split()
            if fields[1] == want and fields[3] == "0A":
                return True
    return False


def _qemu_value(path):
    """A path as a qemu option value (commas doubled)."""
    return path.replace(",", ",,")


_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_SERIAL = re.compile(r"^[A-Za-z0-9_-]{1,20}$")


class Guest(Service):
    """One qemu TCG guest; each ``run_batch`` is one boot (see module docstring).

    name: hostname in the guest (also in the initiator name); memory in MiB.
    disks: extra ``Disk``s (vdb, vdc, ...); lan_listen / lan_connect: a
    127.0.0.1 TCP port for a guest-to-guest link (the listening guest must
    be booted first: ``start_batch`` of the connecting one waits for it),
    lan_address: this guest's "ADDR/PREFIX" on that link.
    """

    def __init__(self, name="guest", image=None, memory=1024, cpus=1, disks=(),
                 lan_listen=None, lan_connect=None, lan_address=None, initiator=None,
                 user_net=True, extra_append=""):
        if not _NAME.match(name):
            raise ValueError("guest name must match %s: %r" % (_NAME.pattern, name))
        if lan_listen and lan_connect:
            raise ValueError("a guest either listens or connects on its lan, not both")
        if (lan_listen or lan_connect) and not lan_address:
            raise ValueError("a lan needs lan_address='ADDR/PREFIX'")
        self.name = name
        self.image = image
        self.memory = memory
        self.cpus = cpus
        self.disks = [dataclasses.replace(d, path=os.path.abspath(d.path))
                      for d in (d if isinstance(d, Disk) else Disk(d) for d in disks)]
        for disk in self.disks:
            if disk.serial and not _SERIAL.match(disk.serial):
                raise ValueError("disk serial must match %s: %r" % (_SERIAL.pattern, disk.serial))
        self.lan_listen = lan_listen
        self.lan_connect = lan_connect
        self.lan_address = lan_address
        self.user_net = user_net
        self.extra_append = extra_append
        self.mac = _unique_mac()
        self.lan_mac = _unique_mac()
        self.initiator = initiator or "iqn.2026-12.org.hasf.guest:%s-%s" % (
            name, os.urandom(3).hex())
        self.dir = None
        self.share = None
        self.overlay = None
        self.proc = None
        self.boots = 0
        self.serial_path = None
        self._stderr_path = None
        self.last_results = None
        self.last_batch_seconds = None
        self._deadline = None
        self._started_at = None

    # -- lifecycle -----------------------------------------------------------------
    def start(self):
        """Prepare: image (cached), overlay, share.  Does not boot (run_batch does)."""
        ensure_host_packages()
        if self.image is None:
            self.image = guest_image()
        for disk in self.disks:
            if not os.path.isfile(disk.path):
                raise FileNotFoundError("guest disk %s does not exist" % disk.path)
        self.dir = tempfile.mkdtemp(prefix="hasf-guest-%s-" % self.name)
        self.share = os.path.join(self.dir, "share")
        os.makedirs(os.path.join(self.share, CONTROL))
        os.chmod(self.share, 0o755)
        self.overlay = os.path.join(self.dir, "root.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                        self.image.root, self.overlay], check=True, capture_output=True,
                       timeout=60, stdin=subprocess.DEVNULL)
        return self

    def stop(self):
        self._kill()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def _kill(self):
        kill_group(self.proc, wait=10)
        self.proc = None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # -- paths -----------------------------------------------------------------------
    def host_path(self, *parts):
        """A path in the share, on the host."""
        return os.path.join(self.share, *parts)

    def guest_path(self, *parts):
        """The same path as the guest sees it."""
        return "/".join((GUEST_SHARE,) + parts)

    def copy_in(self, source, name=None):
        """Copy a host file or directory into the share; return its guest path."""
        name = name or os.path.basename(source.rstrip("/"))
        if os.path.isdir(source):
            shutil.copytree(source, self.host_path(name), symlinks=True)
        else:
            shutil.copy2(source, self.host_path(name))
        return self.guest_path(name)

    @staticmethod
    def disk_device(index):
        """Guest device of extra disk ``index`` (0 -> /dev/vdb; vda is the root)."""
        return "/dev/vd" + "bcdefghijklmnopqrstuvwxyz"[index]

    def serial_log(self):
        """The serial console of the latest boot."""
        if not self.serial_path:
            return ""
        with open(self.serial_path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    # -- qemu ------------------------------------------------------------------------
    def qemu_argv(self):
        append = ("root=/dev/vda rw rootfstype=ext4 console=ttyS0,115200 panic=-1 "
                  "net.ifnames=0 init=%s %s" % (GUEST_INIT, self.extra_append)).strip()
        argv = ["qemu-system-x86_64", "-accel", "tcg", "-machine", "pc",
                "-m", str(self.memory), "-smp", str(self.cpus),
                "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-monitor", "none", "-serial", "file:" + _qemu_value(self.serial_path),
                "-kernel", self.image.kernel, "-initrd", self.image.initrd, "-append", append,
                # the root disk's device first: it is vda whatever follows
                "-drive", "file=%s,if=none,id=root,format=qcow2,cache=writeback"
                % _qemu_value(self.overlay),
                "-device", "virtio-blk-pci,drive=root"]
        for index, disk in enumerate(self.disks):
            drive = "file=%s,if=none,id=disk%d,format=raw" % (_qemu_value(disk.path), index)
            if disk.readonly:
                drive += ",readonly=on"
            device = "virtio-blk-pci,drive=disk%d" % index
            if disk.shared:
                device += ",share-rw=on"
            if disk.serial:
                device += ",serial=%s" % disk.serial
            argv += ["-drive", drive, "-device", device]
        argv += ["-virtfs", "local,path=%s,mount_tag=%s,security_model=passthrough,id=share"
                 % (_qemu_value(self.share), SHARE_TAG)]
        if self.user_net:
            argv += ["-netdev", "user,id=net0",
                     "-device", "virtio-net-pci,netdev=net0,mac=%s" % self.mac]
        if self.lan_listen or self.lan_connect:
            how = ("listen=127.0.0.1:%d" % self.lan_listen if self.lan_listen
                   else "connect=127.0.0.1:%d" % self.lan_connect)
            argv += ["-netdev", "socket,id=lan0,%s" % how,
                     "-device", "virtio-net-pci,netdev=lan0,mac=%s" % self.lan_mac]
        return argv

    def _nics(self):
        nics = []
        if self.user_net:
            nics.append(dict(USER_NET, mac=self.mac))
        if self.lan_listen or self.lan_connect:
            nics.append({"mac": self.lan_mac, "address": self.lan_address})
        return nics

    # -- batches -----------------------------------------------------------------------
    def start_batch(self, commands, modules=(), timeout=None, env=None):
        """Boot the guest to run ``commands`` (argv lists or Commands); returns at once.

        modules: loaded with modprobe before the commands (plus BASE_MODULES).
        timeout: for the whole boot (default BOOT_ALLOWANCE + the commands' own).
        env: extra environment for the commands.
        """
        if self.dir is None:
            raise RuntimeError("Guest.start() first")
        if self.running:
            raise RuntimeError("guest %s is already running a batch" % self.name)
        specs = [_command(c) for c in commands]
        if timeout is None:
            timeout = BOOT_ALLOWANCE + sum(s["timeout"] for s in specs if not s["background"])
        base_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb"}
        base_env.update(env or {})
        batch = {"hostname": self.name, "initiator": self.initiator,
                 "modules": list(BASE_MODULES) + [m for m in modules if m not in BASE_MODULES],
                 "requested_modules": list(modules), "nics": self._nics(),
                 "env": base_env, "commands": specs}
        control = self.host_path(CONTROL)
        for name in ("results.json", "results.json.tmp"):
            if os.path.exists(os.path.join(control, name)):
                os.unlink(os.path.join(control, name))
        _write(os.path.join(control, "runner.py"), RUNNER)
        _write(os.path.join(control, "batch.json"), json.dumps(batch))
        if self.lan_connect:
            wait_until(lambda: tcp_listening(self.lan_connect), 60, 0.2,
                       "the peer guest listening on 127.0.0.1:%d" % self.lan_connect)
        self.boots += 1
        self.serial_path = os.path.join(self.dir, "serial-%d.log" % self.boots)
        self._stderr_path = os.path.join(self.dir, "qemu-%d.err" % self.boots)
        self._requested = list(modules)
        # timeout(1) bounds qemu even if this process dies without stop()
        argv = ["timeout", "-s", "KILL", str(int(timeout) + 30)] + self.qemu_argv()
        with open(self._stderr_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=subprocess.STDOUT,
                                         start_new_session=True, cwd=self.dir)
        self._started_at = time.monotonic()
        self._deadline = self._started_at + timeout
        self._timeout = timeout
        return self

    def wait_batch(self, check_modules=True):
        """Wait (bounded by the batch timeout) for the guest to power off; the results."""
        if self.proc is None:
            raise RuntimeError("no batch is running")
        try:
            code = self.proc.wait(max(0.0, self._deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._kill()
            raise GuestTimeout("guest %s: batch not done after %.0fs (qemu killed)%s"
                               % (self.name, self._timeout, self._diagnostics())) from None
        self.proc = None
        self.last_batch_seconds = round(time.monotonic() - self._started_at, 2)
        results = self._read_results()
        if results is None or not results.get("done"):
            raise GuestError("guest %s: qemu exited rc=%s without finishing the batch%s"
                             % (self.name, code, self._diagnostics(results)))
        self.last_results = results
        if check_modules:
            bad = [m for m in results["modules"]
                   if m["returncode"] != 0 and m["name"] in self._requested]
            if bad:
                raise GuestError("guest %s: modprobe failed: %s" % (self.name, bad))
        bad_net = [n for n in results["network"] if n["errors"]]
        if bad_net:
            raise GuestError("guest %s: network set-up failed: %s%s"
                             % (self.name, bad_net, self._diagnostics(results)))
        return [GuestResult(argv=r["argv"], returncode=r["returncode"],
                            stdout=r.get("stdout", ""), stderr=r.get("stderr", ""),
                            seconds=r.get("seconds", 0.0), timed_out=r["timed_out"],
                            background=r["background"], pid=r["pid"], error=r["error"])
                for r in results["commands"]]

    def run_batch(self, commands, modules=(), timeout=None, env=None, check_modules=True):
        """Boot once, run ``commands`` in order, power off: a GuestResult per command.

        A failing command does not stop the batch (look at each returncode,
        or ``.check()``).  Raises GuestTimeout / GuestError (with the serial
        log's tail) when the batch itself fails, GuestError when a module in
        ``modules`` did not load (unless check_modules=False).
        """
        self.start_batch(commands, modules=modules, timeout=timeout, env=env)
        try:
            return self.wait_batch(check_modules=check_modules)
        finally:
            self._kill()

    def _read_results(self):
        try:
            with open(self.host_path(CONTROL, "results.json")) as handle:
                return json.load(handle)
        except (FileNotFoundError, ValueError):
            return None

    def _diagnostics(self, results=None):
        text = ""
        if results is None:
            results = self._read_results()
        if results is not None:
            text += "\npartial results: %s" % json.dumps(results)[-3000:]
        text += "\nqemu output:\n%s" % _tail(self._stderr_path, 2000)
        text += "\nserial log tail:\n%s" % _tail(self.serial_path, 4000)
        return text
