"""Writing files that may hold secrets: never world-readable, never through a planted link.

A generated CIB carries the fence devices' passwords (pcmk parameters are
plain nvpairs), so every file hasf-cib writes is one: `apply --cib-file NEW`,
`build -o FILE`, and the scratch copies the Pacemaker tools read.  New files
are created 0600 with O_EXCL|O_NOFOLLOW (a symlink or file planted at the
name makes creation fail instead of writing through it); replacing an
existing output goes through a randomly named temporary file in the same
directory (mkstemp: 0600, O_EXCL) renamed over it, keeping its mode.
"""

import os
import tempfile

from hasf.cib.errors import CibError

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | \
    getattr(os, "O_CLOEXEC", 0)


def create_private(path, text):
    """Create path (it must not exist) 0600 with text; CibError if something is there."""
    try:
        fd = os.open(path, _CREATE, 0o600)
    except FileExistsError:
        raise CibError("%s appeared while hasf-cib was creating it; not overwritten"
                       % path) from None
    except OSError as exc:
        raise CibError("cannot create %s: %s" % (path, exc.strerror)) from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def replace_private(path, text):
    """Write text to path atomically: new files 0600, an existing file keeps its mode."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o600
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path),
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            os.fchmod(handle.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
