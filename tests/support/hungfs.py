"""A filesystem that stops answering: the stand-in for hung NFS, a dead iSCSI disk, or
OCFS2 waiting for DLM recovery after a node death.

It is bindfs (a FUSE passthrough, Debian package `bindfs`) over a scratch directory,
with attribute and entry caching off so every stat reaches the daemon.  `freeze()`
SIGSTOPs the daemon: from then on every call that reaches the filesystem (stat, open,
read, write, mkdir, fsync) blocks in the kernel until `thaw()`, exactly as a process
does on a dead network filesystem.  What does not reach the filesystem -- readlink of
/proc/PID/fd/N, /proc/PID/fdinfo, /proc/PID/maps, mountinfo -- still answers, which is
what the agents rely on.

    with HungFuse(workdir) as fs:
        holder = subprocess.Popen([... open a file under fs.mount_point ...])
        fs.freeze()
        ... the agent must answer in time ...
    # thawed, unmounted, daemon ended -- whatever the test did
"""

import os
import shutil
import signal
import subprocess
import time

SIGSTOP, SIGCONT = signal.SIGSTOP, signal.SIGCONT


def _mounted(point):
    with open("/proc/self/mountinfo") as handle:
        return any(line.split()[4] == point for line in handle)


class HungFuse:
    def __init__(self, workdir, name="hung"):
        self.source = os.path.join(workdir, name + "-src")
        self.mount_point = os.path.join(workdir, name)
        self.daemon = None
        self.frozen = False

    def __enter__(self):
        if shutil.which("bindfs") is None:
            raise RuntimeError("bindfs is not installed (Debian package bindfs)")
        os.makedirs(self.source, exist_ok=True)
        os.makedirs(self.mount_point, exist_ok=True)
        self.daemon = subprocess.Popen(
            ["bindfs", "-f", "-o", "attr_timeout=0,entry_timeout=0,negative_timeout=0",
             self.source, self.mount_point], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        end = time.monotonic() + 10
        while not _mounted(self.mount_point):
            if self.daemon.poll() is not None or time.monotonic() > end:
                raise RuntimeError("bindfs did not mount %s" % self.mount_point)
            time.sleep(0.02)
        return self

    def path(self, *parts):
        return os.path.join(self.mount_point, *parts)

    def freeze(self):
        os.kill(self.daemon.pid, SIGSTOP)
        self.frozen = True

    def thaw(self):
        if self.daemon is not None and self.daemon.poll() is None:
            os.kill(self.daemon.pid, SIGCONT)
        self.frozen = False

    def __exit__(self, *exc):
        self.thaw()
        for _ in range(50):
            if not _mounted(self.mount_point):
                break
            subprocess.run(["umount", "-l", self.mount_point], capture_output=True, timeout=10)
        if self.daemon is not None:
            self.daemon.terminate()
            try:
                self.daemon.wait(5)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait(5)
        return False


def wait_blocked(pid, seconds=5.0):
    """Wait until process pid sleeps in the kernel on the frozen filesystem (state D or S
    with a fuse wait channel); True when it does."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with open("/proc/%d/wchan" % pid) as handle:
                wchan = handle.read()
            with open("/proc/%d/stat" % pid) as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        if state == "D" or "fuse" in wchan or "request_wait" in wchan:
            return True
        time.sleep(0.05)
    return False
