"""Batch guests: boot Debian's kernel under qemu (TCG), run commands, power off.

Why: this machine has no loadable kernel modules, so OCFS2 mounts, open-iscsi
logins (iscsi_tcp) and LIO targets (target_core_mod) cannot happen on the
host.  A qemu guest with Debian's own kernel can do all three: the lab's
storage path and OCFS2 steps (storage_path.py, ocfs2_cluster.py), the tests
and the benches run their commands in one.  /dev/kvm here is PVM and cannot
run real kernels, so guests run under TCG (software emulation): slow but
real.  One batch (boot, commands, power-off) ~10-13 s.

The image (and its PID 1, which runs the runner the host writes to the
share) is image.py's (``guest_image``), the qemu helpers are qemu.py's;
unlike a lab node (node.py: one long-lived boot, sshd, the cluster stack),
a batch guest boots once per batch:

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
    ``run_batch()`` boots the guest once: the image's init mounts the share
    and runs the batch runner the host writes there (RUNNER below, so
    changing it needs no image rebuild), which loads the modules asked
    for, runs each argv (no shell), writes every result as JSON back to the
    share and powers off.  The overlay persists between batches of one
    Guest, so a later boot sees files an earlier one wrote.  Every wait is
    bounded; on a timeout qemu is killed and the error carries the tail of
    the serial log.  ``stop()`` kills qemu and removes the overlay, share
    and logs.

Facts in the guest: no udev runs (devtmpfs only), so BASE_MODULES
(virtio_net, sd_mod, configfs) are loaded before the caller's modules and
configfs is mounted; NICs are eth0 (user net), eth1 (the lan), configured
by MAC; the root disk's -device comes first, so it is vda and extra disks
are vdb, vdc, ... (``Guest.disk_device(i)``); a lan joins exactly two
guests (qemu's socket netdev is point to point).  Each qemu runs under
``timeout -s KILL`` too, so even a killed caller leaves none behind for
long.

Host Debian packages needed (HOST_PACKAGES): mmdebstrap, qemu-system-x86,
qemu-utils (qemu-img), e2fsprogs (mkfs.ext4 -d), util-linux (unshare),
coreutils (timeout); missing ones are installed with apt-get on first use.
tests/test_support_guest.py and the OCFS2 steps also use ocfs2-tools on the host.
"""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

from lab.image import (BASE_MODULES, CONTROL, GUEST_INIT, GUEST_SHARE, SHARE_TAG, USER_NET,
                       _write, ensure_host_packages, guest_image)
from lab.process import Service, kill_group, wait_until
from lab.process import tail as _tail
from lab.qemu import qemu_value as _qemu_value
from lab.qemu import tcp_listening
from lab.qemu import unique_mac as _unique_mac

BOOT_ALLOWANCE = 120               # default batch timeout = this + the commands' timeouts
DEFAULT_COMMAND_TIMEOUT = 60

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
class GuestError(RuntimeError):
    """A guest batch failed (qemu did not start, the runner crashed, a module
    the caller asked for did not load)."""


class GuestTimeout(GuestError):
    """A guest batch did not finish in time (qemu was killed)."""


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
    #: the Linux console (a Xen dom0 has hvc0: lab/xen_host.py)
    console = "ttyS0,115200"

    def kernel_append(self):
        """The Linux kernel's command line: the image's root, init and console."""
        return ("root=/dev/vda rw rootfstype=ext4 console=%s panic=-1 net.ifnames=0 "
                "init=%s %s" % (self.console, GUEST_INIT, self.extra_append)).strip()

    def boot_argv(self):
        """What qemu boots: Linux directly (lab/xen_host.py boots Xen instead)."""
        return ["-kernel", self.image.kernel, "-initrd", self.image.initrd,
                "-append", self.kernel_append()]

    def qemu_argv(self):
        argv = ["qemu-system-x86_64", "-accel", "tcg", "-machine", "pc",
                "-m", str(self.memory), "-smp", str(self.cpus),
                "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-monitor", "none", "-serial", "file:" + _qemu_value(self.serial_path)]
        argv += self.boot_argv()
        # the root disk's device first: it is vda whatever follows
        argv += ["-drive", "file=%s,if=none,id=root,format=qcow2,cache=writeback"
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
