"""The process table as /proc shows it, read fail-closed.

Why a module of its own: "no qemu process runs this domain" is the proof a
probe gives Pacemaker when libvirtd cannot be asked, and "its qemu process
is gone" is what a stop without libvirtd reports.  Both are false stops if a
read error or a half-dead process reads as "nothing there".  So every read
here says one of three things: the value; None when the process (or thread)
is gone (ENOENT/ENOTDIR/ESRCH, hasf.kernel.GONE); or CannotRead for anything
else (EACCES under hidepid, EIO, ...), which callers turn into an error.

A dying process can look like nothing: when its main thread has exited
while another thread is still stuck in the kernel (on a dead NFS or OCFS2
store), /proc/PID/cmdline is empty and the leader shows State Z, yet the
process lives on, holding its memory, files and disks.  `alive` therefore
looks at every thread, not at the leader; `cmdline(pid, tid)` reads a live
thread's view of the shared command line.

Only /proc is read: the kernel answers it from memory, never a filesystem
that could hang.
"""

import os

from hasf.kernel import GONE, CannotRead

PROC = "/proc"
#: task flag of kernel threads (include/linux/sched.h PF_KTHREAD): no command line, ever
PF_KTHREAD = 0x00200000
#: states of a task that has finished exiting (zombie, dead): it holds no memory or files
EXITED = frozenset("ZX")


def _path(pid, tid=None, name=""):
    if tid is None:
        return "%s/%d/%s" % (PROC, pid, name)
    return "%s/%d/task/%d/%s" % (PROC, pid, tid, name)


def _read(path, what):
    """The bytes of a /proc file; None when the process is gone; CannotRead otherwise."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        if exc.errno in GONE:
            return None
        raise CannotRead(what, exc) from None


def pids():
    """Every process id in /proc (thread-group leaders), ascending."""
    try:
        names = os.listdir(PROC)
    except OSError as exc:
        raise CannotRead("the process table (%s)" % PROC, exc) from None
    return sorted(int(n) for n in names if n.isdigit())


def cmdline(pid, tid=None):
    """argv of process pid (through thread tid if given): a list, possibly empty; None if gone."""
    data = _read(_path(pid, tid, "cmdline"), "the command line of process %d" % pid)
    if data is None:
        return None
    if data.endswith(b"\0"):
        data = data[:-1]
    return [os.fsdecode(arg) for arg in data.split(b"\0")] if data else []


def _stat_fields(pid, tid=None):
    """The fields of /proc/PID[/task/TID]/stat after the command name; None if gone."""
    data = _read(_path(pid, tid, "stat"), "the status of process %d" % pid)
    if data is None:
        return None
    # the name is in parentheses and may itself contain ") ": split at the last one
    _head, sep, rest = data.rpartition(b")")
    fields = rest.split()
    if not sep or len(fields) < 7:
        raise CannotRead("the status of process %d (unexpected format)" % pid)
    return fields


def state(pid, tid=None):
    """The one-letter scheduler state (R, S, D, Z, ...) of pid (or its thread tid); None if gone."""
    fields = _stat_fields(pid, tid)
    return None if fields is None else fields[0].decode("ascii", "replace")


def is_kernel_thread(pid):
    """True for a kernel thread (which never has a command line); None if gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    try:
        return bool(int(fields[6]) & PF_KTHREAD)
    except ValueError:
        raise CannotRead("the flags of process %d (not a number)" % pid) from None


def threads(pid):
    """The thread ids of process pid, ascending; None if it is gone."""
    try:
        names = os.listdir(_path(pid, name="task"))
    except OSError as exc:
        if exc.errno in GONE:
            return None
        raise CannotRead("the threads of process %d" % pid, exc) from None
    return sorted(int(n) for n in names if n.isdigit())


def exists(pid):
    """Whether /proc/PID exists (a zombie included)."""
    try:
        os.stat(_path(pid))
        return True
    except OSError as exc:
        if exc.errno in GONE:
            return False
        raise CannotRead("process %d" % pid, exc) from None


def alive(pid):
    """Whether process pid still exists with a thread that has not finished exiting.

    False when /proc/PID is gone, or when every thread is a zombie: what is
    left then waits only for its parent to reap it, and has already given up
    its memory, files and disks (the kernel releases them before it marks a
    task a zombie).  A zombie leader with a live thread is alive.
    """
    tids = threads(pid)
    if tids is None:
        return False
    for tid in tids or [pid]:
        letter = state(pid, tid)
        if letter is not None and letter not in EXITED:
            return True
    return False
