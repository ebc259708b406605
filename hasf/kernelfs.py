"""Reading the kernel's attribute files (sysfs, configfs, /proc): one value per file.

A missing file or directory is an answer ("not there"), not an error: the
callers ask whether something the kernel would show exists.
"""

import os


def read_attr(path):
    """The file's text without surrounding whitespace, or None if it cannot be read."""
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def entries(path):
    """The directory's entries, sorted; [] if it is not there."""
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []
