"""Which processes keep a filesystem busy -- found without touching it.

The classic tools (fuser, lsof) stat /proc/PID/{cwd,root,exe,fd/*}: a stat
through those links reaches the filesystem behind them, and one unrelated
process holding a file on a dead NFS mount freezes the scan (and the stop
that runs it) in D state.  Here nothing is stat'ed:

- open files: /proc/PID/fdinfo/N names the mount id of each descriptor;
- cwd, root, exe: opened with O_PATH (no filesystem call), and the mount id
  read from this process's own fdinfo for that descriptor;
- mappings without a descriptor: /proc/PID/maps carries the device number.

Mount ids are unique across namespaces, so one set of ids (every mount of the
filesystem, in every namespace, plus what is mounted on top of them) finds
holders in containers and libvirt's per-qemu namespaces as well as here.
"""

import os

from hasf.kernel import GONE, is_absent
from hasf.kernel.namespaces import pids, task_dirs

PROC = "/proc"


class Holder:
    """A process that keeps a filesystem busy, how (cwd, root, exe, fd N, mmap), and where."""

    __slots__ = ("pid", "comm", "how")

    def __init__(self, pid, comm, how):
        self.pid, self.comm, self.how = pid, comm, how

    def __repr__(self):
        return "%d (%s, %s)" % (self.pid, self.comm, self.how)


class Scan:
    """The result of one scan: holders, and processes that could not be inspected (a
    scan finds whom to signal; whether the filesystem is free is the kernel's answer)."""

    def __init__(self):
        self.holders = []
        self.uninspectable = []


def _mount_id_of_fdinfo(path):
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith("mnt_id:"):
                    return int(line.split()[1])
    except OSError as exc:
        if is_absent(exc, GONE):
            return None
        raise
    return None


def _link_mount_id(path):
    """Mount id of what the magic link at path points to (O_PATH: no filesystem call)."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        if is_absent(exc, GONE):
            return None
        raise
    try:
        return _mount_id_of_fdinfo("%s/self/fdinfo/%d" % (PROC, fd))
    finally:
        os.close(fd)


def _maps_hold(path, device):
    wanted = "%02x:%02x" % device
    try:
        with open(path) as handle:
            for line in handle:
                parts = line.split(None, 5)
                if len(parts) > 4 and parts[3] == wanted and parts[4] != "0":
                    return True
    except OSError as exc:
        if is_absent(exc, GONE):
            return False
        raise
    return False


def _how(task, mount_ids, device):
    """How the task at proc dir `task` uses the filesystem, or None."""
    for link in ("cwd", "root", "exe"):
        if _link_mount_id(task + "/" + link) in mount_ids:
            return link
    try:
        fds = os.listdir(task + "/fdinfo")
    except OSError as exc:
        if is_absent(exc, GONE):
            return None
        raise
    for fd in fds:
        if _mount_id_of_fdinfo(task + "/fdinfo/" + fd) in mount_ids:
            return "fd " + fd
    if _maps_hold(task + "/maps", device):
        return "mmap"
    return None


def _comm(pid):
    try:
        with open("%s/%d/comm" % (PROC, pid)) as handle:
            return handle.read().strip()
    except OSError:
        return "?"


def scan(mount_ids, device, proc=PROC):
    """Every process (but this one) holding a file under one of mount_ids (or mapping a
    file of the filesystem with this device number)."""
    me = os.getpid()
    mount_ids = frozenset(mount_ids)
    result = Scan()
    for pid in pids(proc):
        if pid == me:
            continue
        for task in task_dirs(pid, proc):
            try:
                how = _how(task, mount_ids, device)
            except OSError:  # EACCES: a process we may not inspect (and could not signal)
                result.uninspectable.append(pid)
                break
            if how is not None:
                result.holders.append(Holder(pid, _comm(pid), how))
                break
    return result
