"""What the kernel says about mounts, and which processes hold one.

Read straight from /proc, never through a tool: /proc/self/mountinfo is
exact (mount points with spaces come escaped as \\040, and each entry has the
filesystem's device number), and walking /proc/<pid>/{cwd,root,exe,fd,maps}
by device number finds every holder -- including a qemu that has a VM image
open on OCFS2, which fuser misses (ClusterLabs #1426) -- without the calls
that make fuser block on a dead network filesystem.
"""

import os

PROC = "/proc"


class Mount:
    """One line of mountinfo: where, what device (major:minor and source), which fstype."""

    __slots__ = ("mount_id", "device", "root", "mount_point", "options", "fstype", "source",
                 "super_options")

    def __init__(self, mount_id, device, root, mount_point, options, fstype, source,
                 super_options):
        self.mount_id = mount_id
        self.device = device          # (major, minor) of the mounted filesystem
        self.root = root
        self.mount_point = mount_point
        self.options = options
        self.fstype = fstype
        self.source = source
        self.super_options = super_options

    def __repr__(self):
        return "Mount(%s on %s type %s)" % (self.source, self.mount_point, self.fstype)


def _unescape(text):
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        code = text[i + 1:i + 4]
        if text[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text):
    """[Mount] in kernel order (later entries are mounted on top of earlier ones)."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 6 or len(tail) < 2:
            continue
        major, _, minor = fields[2].partition(":")
        mounts.append(Mount(int(fields[0]), (int(major), int(minor)), _unescape(fields[3]),
                            _unescape(fields[4]), fields[5], tail[0], _unescape(tail[1]),
                            tail[2] if len(tail) > 2 else ""))
    return mounts


def mounts(proc=PROC):
    with open(os.path.join(proc, "self", "mountinfo")) as handle:
        return parse_mountinfo(handle.read())


def on(directory, table):
    """The mount visible at directory (the topmost one), or None."""
    found = None
    for mount in table:
        if mount.mount_point == directory:
            found = mount
    return found


def block_device_number(path):
    """(major, minor) of a block device node, or None if path is not one (or is gone)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if (st.st_mode & 0o170000) != 0o060000:
        return None
    return os.major(st.st_rdev), os.minor(st.st_rdev)


# --- holders ---------------------------------------------------------------------------------
class Holder:
    """A process that keeps a filesystem busy, and how (cwd, root, exe, fd, mmap)."""

    def __init__(self, pid, comm, how):
        self.pid, self.comm, self.how = pid, comm, how

    def __repr__(self):
        return "%d (%s, %s)" % (self.pid, self.comm, self.how)


def _dev_of(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return os.major(st.st_dev), os.minor(st.st_dev)


def _holds(pid_dir, device):
    """How the process in pid_dir uses a file on device, or None."""
    for link in ("cwd", "root", "exe"):
        if _dev_of(os.path.join(pid_dir, link)) == device:
            return link
    fd_dir = os.path.join(pid_dir, "fd")
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        fds = []
    for fd in fds:
        if _dev_of(os.path.join(fd_dir, fd)) == device:
            return "fd " + fd
    wanted = "%02x:%02x" % device
    try:
        with open(os.path.join(pid_dir, "maps")) as handle:
            for line in handle:
                parts = line.split(None, 5)
                if len(parts) > 4 and parts[3] == wanted and parts[4] != "0":
                    return "mmap"
    except OSError:
        pass
    return None


def _mount_namespace(pid_dir):
    try:
        return os.readlink(os.path.join(pid_dir, "ns", "mnt"))
    except OSError:
        return None


def holders(device, proc=PROC):
    """Every process (but this one) in this mount namespace using a file on the filesystem
    with this device number.

    Only this namespace: a process in another one (a container, a cluster node's private
    namespace) holds its own copy of the mount, which does not keep this one busy -- and
    must not be killed for it."""
    me = os.getpid()
    ours = _mount_namespace(os.path.join(proc, "self"))
    found = []
    for name in os.listdir(proc):
        if not name.isdigit() or int(name) == me:
            continue
        pid_dir = os.path.join(proc, name)
        if ours is not None and _mount_namespace(pid_dir) != ours:
            continue
        how = _holds(pid_dir, device)
        if how is None:
            continue
        try:
            with open(os.path.join(pid_dir, "comm")) as handle:
                comm = handle.read().strip()
        except OSError:
            continue  # gone meanwhile
        found.append(Holder(int(name), comm, how))
    return found
