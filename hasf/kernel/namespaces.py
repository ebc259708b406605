"""Every mount namespace on this node, and where a filesystem is mounted in each.

"Not mounted" is a claim about the whole node: a copy of a mount in a
container's or a service's private namespace (unshare -m, systemd's
PrivateTmp/ProtectSystem, libvirt's per-qemu namespace) keeps the
filesystem's superblock alive and writable, exactly like one here.  The
kernel lists namespaces only through the processes in them, so this walks
/proc: one reader per distinct (mount namespace, root directory) -- a
chrooted process sees only part of its namespace -- and a zombie
thread-group leader is looked through to its live threads.

Only readlink and reads of /proc: nothing here touches a mounted filesystem.
"""

import os

from hasf.kernel import GONE, CannotRead, is_absent
from hasf.kernel import mountinfo

PROC = mountinfo.PROC


class View:
    """One mount namespace as seen from one root: a proc directory to read it through."""

    __slots__ = ("namespace", "root", "proc_dir", "pid", "here")

    def __init__(self, namespace, root, proc_dir, pid, here):
        self.namespace, self.root, self.proc_dir, self.pid = namespace, root, proc_dir, pid
        self.here = here  # this process's own namespace and root

    def __repr__(self):
        return "%s of pid %d" % ("this mount namespace" if self.here else
                                 "mount namespace %s" % self.namespace.strip("mnt:[]"),
                                 self.pid)


def _readlink(path):
    """The link's text; None if the process (or task) is gone; CannotRead otherwise."""
    try:
        return os.readlink(path)
    except OSError as exc:
        if is_absent(exc, GONE):
            return None
        raise CannotRead(path, exc) from None


def pids(proc=PROC):
    """Every process id in /proc (they come and go; callers treat a vanished one as gone)."""
    try:
        names = os.listdir(proc)
    except OSError as exc:
        raise CannotRead(proc, exc) from None
    return [int(n) for n in names if n.isdigit()]


def _view_key(proc_dir, pid):
    """(namespace, root) of the task at proc_dir; None if it is gone.

    A process this one may not inspect (ptrace rules: a non-dumpable init in a
    sandbox, an LSM) hides its namespace links but usually not its mountinfo:
    it becomes a view of its own, read through its mountinfo -- and if that
    cannot be read either, tables() raises CannotRead."""
    try:
        namespace = _readlink(proc_dir + "/ns/mnt")
        root = _readlink(proc_dir + "/root")
    except CannotRead:
        return ("uninspectable pid %d" % pid, None)
    if namespace is None or root is None:
        return None
    return namespace, root


def task_dirs(pid, proc=PROC):
    """The proc directories to look at for pid: itself, or -- when its leader has exited
    (a zombie whose other threads live on, e.g. a dying qemu) -- each live thread."""
    base = "%s/%d" % (proc, pid)
    try:
        if _readlink(base + "/ns/mnt") is not None:
            return [base]
    except CannotRead:
        return [base]  # not ours to inspect: views() reads what it can of it
    try:
        tids = os.listdir(base + "/task")
    except OSError as exc:
        if is_absent(exc, GONE):
            return []
        raise CannotRead(base + "/task", exc) from None
    return ["%s/task/%s" % (base, t) for t in tids if t.isdigit() and int(t) != pid]


def views(proc=PROC):
    """[View] -- one per distinct (mount namespace, root) on this node, ours first."""
    own_ns = _readlink(proc + "/self/ns/mnt")
    own_root = _readlink(proc + "/self/root")
    found = {(own_ns, own_root): View(own_ns, own_root, proc + "/self", os.getpid(), True)}
    for pid in pids(proc):
        for proc_dir in task_dirs(pid, proc):
            key = _view_key(proc_dir, pid)
            if key is None:
                continue  # gone meanwhile
            namespace, root = key
            if key not in found:
                found[key] = View(namespace, root, proc_dir, pid, False)
    return list(found.values())


class Sighting:
    """One mount of the filesystem, and the view it was seen in."""

    __slots__ = ("view", "mount")

    def __init__(self, view, mount):
        self.view, self.mount = view, mount

    def __repr__(self):
        return "%s (%s)" % (self.mount.mount_point, self.view)


def tables(proc=PROC):
    """[(View, [Mount])] for every view that could still be read."""
    out = []
    for view in views(proc):
        mounts = mountinfo.table(view.proc_dir)
        if mounts is not None:  # the reader exited meanwhile: its namespace may have too
            out.append((view, mounts))
    return out


def sightings(device, proc=PROC, read=None):
    """Every mount of the filesystem with this device number, in every mount namespace."""
    found = []
    for view, mounts in (read if read is not None else tables(proc)):
        found.extend(Sighting(view, m) for m in mountinfo.of_device(device, mounts))
    return found
