"""Reading the kernel's attribute files (sysfs, configfs, /proc): one value per file.

A missing file or directory is an answer ("not there"): the callers ask
whether something the kernel would show exists.  Every other error (EACCES,
EIO, EISDIR, ...) is CannotRead -- an agent that took it for "not there"
would answer "stopped" for a session or a cluster it simply could not see.
"""

import os

from hasf.kernel import CannotRead, is_absent


def read_attr(path):
    """The file's text without surrounding whitespace; None only if it is not there."""
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError as exc:
        if is_absent(exc):
            return None
        raise CannotRead(path, exc) from None


def entries(path):
    """The directory's entries, sorted; [] only if it is not there."""
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        if is_absent(exc):
            return []
        raise CannotRead(path, exc) from None


def is_directory(path):
    """Whether path is a directory; False only if it is not there (or not a directory)."""
    try:
        return (os.stat(path).st_mode & 0o170000) == 0o040000
    except OSError as exc:
        if is_absent(exc):
            return False
        raise CannotRead(path, exc) from None
