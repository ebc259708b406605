"""A "machine" made of namespaces: netns + private mount + UTS namespace.

Why: libvirtd (libvirtd.py), and the tests' Pacemaker nodes (libqb IPC) and
sshd keep sockets, pid files and shared-memory rings in fixed paths (/run,
/dev/shm, /var/lib/...).  Giving each simulated host a private mount
namespace with fresh tmpfs on /run and /dev/shm and bind mounts for its
state directories lets any number of them run at once without touching the
host's files.

A holder process (``sleep infinity`` started through ``ip netns exec NS
unshare --mount --uts --propagation private``) pins the namespaces; every
other process is started with ``nsenter -t HOLDER -n -m -u``.  Mounts made
inside never propagate to the host.  ``kill_all()`` SIGKILLs every process
whose mount or network namespace is the holder's: how a node "crashes".
"""

import os
import signal
import subprocess
import time

from lab.process import wait_until

DEFAULT_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def base_env(extra=None):
    """Minimal, predictable environment for processes inside a namespace."""
    env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", "HOME": "/root"}
    if extra:
        env.update(extra)
    return env


class NsHost:
    """Processes sharing one netns and one private mount+UTS namespace."""

    def __init__(self, netns, hostname, scratch):
        self.netns = netns          # name of an existing network namespace
        self.hostname = hostname
        self.scratch = scratch      # host dir for overlay upper dirs etc.
        self.holder = None
        self._overlaid = set()
        self._ovl_count = 0

    # -- lifecycle ---------------------------------------------------------
    def start(self, timeout=10):
        self.holder = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--uts",
             "--propagation", "private", "--", "sleep", "infinity"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)

        def exec_done():
            if self.holder.poll() is not None:
                raise RuntimeError("namespace holder exited rc=%s" % self.holder.returncode)
            with open("/proc/%d/comm" % self.holder.pid) as f:
                return f.read().strip() == "sleep"
        wait_until(exec_done, timeout, 0.02, "namespace holder of %s" % self.hostname)
        self.run(["hostname", self.hostname], check=True)
        return self

    @property
    def pid(self):
        return self.holder.pid

    @staticmethod
    def _ns(pid, kind):
        return os.readlink("/proc/%d/ns/%s" % (pid, kind))

    def pids(self):
        """Pids of all processes in this host's mount namespace *or* network
        namespace (the latter catches children that made yet another mount
        namespace, e.g. qemu started by libvirtd)."""
        if self.holder is None:
            return []
        try:
            mnt = self._ns(self.holder.pid, "mnt")
            net = self._ns(self.holder.pid, "net")
        except OSError:
            return []
        out = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    pid = int(entry)
                    if self._ns(pid, "mnt") == mnt or self._ns(pid, "net") == net:
                        out.append(pid)
                except OSError:
                    pass
        return out

    def kill_all(self, include_holder=True, timeout=10):
        """SIGKILL every process in the namespace; wait (bounded) until gone."""
        holder = self.holder.pid if self.holder else None
        victims = [p for p in self.pids() if include_holder or p != holder]
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if include_holder and self.holder is not None:
            try:
                self.holder.wait(timeout)
            except subprocess.TimeoutExpired:
                pass

        def gone():
            for pid in victims:
                try:
                    # reap our own children; others we just poll
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                if os.path.exists("/proc/%d" % pid):
                    with open("/proc/%d/stat" % pid) as f:
                        if f.read().split(")")[-1].split()[0] != "Z":
                            return False
            return True
        wait_until(gone, timeout, 0.05, "processes of %s to die" % self.hostname)
        if include_holder:
            self.holder = None
            self._overlaid = set()

    # -- running things ----------------------------------------------------
    def argv(self, argv):
        """argv prefix entering net+mount+uts namespaces of this host."""
        return ["nsenter", "-t", str(self.holder.pid), "-n", "-m", "-u", "--"] + list(argv)

    def run(self, argv, input=None, env=None, timeout=30, check=False):
        """Run argv inside, bounded; CompletedProcess with text stdout/stderr."""
        return subprocess.run(self.argv(argv), input=input, env=base_env(env),
                              capture_output=True, text=True, timeout=timeout, check=check)

    def popen(self, argv, log_path, env=None):
        """Start a long-running daemon inside, in its own process group."""
        log = open(log_path, "ab")
        try:
            return subprocess.Popen(self.argv(argv), env=base_env(env), stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()

    # -- mounts --------------------------------------------------------------
    def mount(self, *args):
        self.run(["mount"] + list(args), check=True, timeout=10)

    def mount_tmpfs(self, path, mode="0755"):
        self.run(["mkdir", "-p", path], check=True)
        self.mount("-t", "tmpfs", "-o", "mode=%s" % mode, "tmpfs", path)

    def ensure_path(self, path, is_dir=True):
        """Make ``path`` exist *inside only*: if missing, overlay its nearest
        existing ancestor with a writable layer (upper dir in scratch) first,
        so nothing is created in the host's filesystem.  Exceptions: paths
        under /run and /dev/shm (private tmpfs already) and /tmp (shared with
        the host; missing dirs there are simply created)."""
        exists = self.run(["test", "-e", path]).returncode == 0
        if exists:
            return
        anc = os.path.dirname(path.rstrip("/"))
        while self.run(["test", "-d", anc]).returncode != 0:
            anc = os.path.dirname(anc)
        if anc in ("/", "") or anc in ("/proc", "/sys", "/dev"):
            raise ValueError("refusing to overlay %r to create %r" % (anc, path))
        if anc not in self._overlaid and not anc.startswith(("/run/", "/dev/shm/", "/tmp/")):
            self._ovl_count += 1
            base = os.path.join(self.scratch, "ovl%d" % self._ovl_count)
            os.makedirs(base + "/upper")
            os.makedirs(base + "/work")
            self.mount("-t", "overlay", "overlay", "-o",
                       "lowerdir=%s,upperdir=%s/upper,workdir=%s/work" % (anc, base, base), anc)
            self._overlaid.add(anc)
        if is_dir:
            self.run(["mkdir", "-p", path], check=True)
        else:
            self.run(["mkdir", "-p", os.path.dirname(path)], check=True)
            self.run(["touch", path], check=True)

    def bind(self, src, dst, readonly=False):
        """Bind-mount host path ``src`` onto ``dst`` inside (created if needed)."""
        self.ensure_path(dst, is_dir=os.path.isdir(src))
        self.mount("--bind", src, dst)
        if readonly:
            self.mount("-o", "remount,bind,ro", dst)

    def overlay_lower(self, extra_dir, target):
        """Read-only overlay: files of host ``extra_dir`` appear in ``target``
        (e.g. fence agents in /usr/sbin) on top of its existing content."""
        self.mount("-t", "overlay", "overlay", "-o",
                   "lowerdir=%s:%s" % (extra_dir, target), target)

    def wait_gone(self, timeout=5):
        deadline = time.monotonic() + timeout
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.05)
