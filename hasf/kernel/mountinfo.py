"""What the kernel says is mounted: /proc/<pid>/mountinfo, parsed.

Read straight from /proc, never through a tool: mountinfo is exact (mount
points with spaces come escaped as \\040, and each entry has its mount id and
the filesystem's device number), and reading it never touches a mounted
filesystem, so a dead one cannot hang the reader.
"""

from hasf.kernel import GONE, CannotRead, is_absent

PROC = "/proc"


class Mount:
    """One line of mountinfo: its id, the device (major, minor), the root of the
    filesystem it shows (not "/" for a bind mount of a subdirectory), where, which type."""

    __slots__ = ("mount_id", "parent_id", "device", "root", "mount_point", "options", "fstype",
                 "source", "super_options")

    def __init__(self, mount_id, parent_id, device, root, mount_point, options, fstype, source,
                 super_options):
        self.mount_id = mount_id
        self.parent_id = parent_id
        self.device = device
        self.root = root
        self.mount_point = mount_point
        self.options = options
        self.fstype = fstype
        self.source = source
        self.super_options = super_options

    def under(self, directory):
        """Whether this mount sits at directory or below it."""
        return self.mount_point == directory or \
            self.mount_point.startswith(directory.rstrip("/") + "/")

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


def parse(text):
    """[Mount] in kernel order (later entries are mounted on top of earlier ones)."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 6 or len(tail) < 2:
            continue
        major, _, minor = fields[2].partition(":")
        mounts.append(Mount(int(fields[0]), int(fields[1]), (int(major), int(minor)),
                            _unescape(fields[3]), _unescape(fields[4]), fields[5], tail[0],
                            _unescape(tail[1]), tail[2] if len(tail) > 2 else ""))
    return mounts


def table(proc_dir=PROC + "/self"):
    """The mounts seen by the process (or task) at proc_dir; CannotRead if unreadable.
    For another process that is gone, None."""
    path = proc_dir + "/mountinfo"
    try:
        with open(path) as handle:
            return parse(handle.read())
    except OSError as exc:
        if proc_dir != PROC + "/self" and is_absent(exc, GONE):
            return None
        raise CannotRead(path, exc) from None


def at(directory, mounts):
    """Every mount at exactly directory, bottom first (the last one is what is seen)."""
    return [m for m in mounts if m.mount_point == directory]


def of_device(device, mounts):
    """Every mount of the filesystem with this device number (bind mounts included)."""
    return [m for m in mounts if m.device == device]
