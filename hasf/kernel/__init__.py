"""The kernel's own view, read fail-closed: the one layer every agent asks.

Agents decide OCF answers ("running", "not running", "cannot tell"); this
package only reads what the kernel shows -- mountinfo in every mount
namespace, /proc's process table and open files, sysfs and configfs
attributes, exclusive opens of block devices -- and says exactly one of
three things: here it is, it is provably absent, or it cannot be read.

The rule that keeps a false "stopped" out: only ENOENT and ENOTDIR (and,
for a process's /proc entries, ESRCH) mean absent.  EACCES, EIO, EPERM,
ELOOP, a timeout -- anything else -- is `CannotRead`, which an agent turns
into an error, never into OCF_NOT_RUNNING or a successful stop.

Nothing here touches a filesystem that could hang: /proc, /sys and
configfs are answered by the kernel itself, holders are matched by mount
id (fdinfo) and device number (maps), never by stat through a link.
What must touch storage goes through hasf.isolated (a bounded child).
"""

import errno

from hasf.errors import HasfError

#: errno values that prove a path is not there
ABSENT = frozenset((errno.ENOENT, errno.ENOTDIR))
#: ... and, for /proc/PID/..., that the process is gone
GONE = ABSENT | {errno.ESRCH}


class CannotRead(HasfError):
    """The kernel's view could not be read; never to be taken as "absent"."""

    def __init__(self, what, exc=None):
        reason = "" if exc is None else ": %s" % (exc.strerror or exc)
        super().__init__("cannot read %s%s" % (what, reason))
        self.errno = getattr(exc, "errno", None)


def is_absent(exc, gone=ABSENT):
    """Whether the OSError exc proves absence (else it is "cannot tell")."""
    return isinstance(exc, OSError) and exc.errno in gone
