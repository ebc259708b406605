"""Block devices: their numbers, and whether the kernel still holds one.

The last word on "is this filesystem still mounted somewhere on this node"
is the kernel's: a block device whose superblock lives (mounted in any
namespace, lazily detached but still busy, kept by a namespace no process is
in) or that device-mapper/md/swap claims cannot be opened with O_EXCL.  So a
stop that has unmounted every mount it can see asks that question before it
answers "stopped".

An open of a disk can wait on its driver (SCSI error handling on a dead
iSCSI session), so the question is asked in a bounded child.
"""

import errno
import os

from hasf.kernel import CannotRead, is_absent

FREE, BUSY, GONE = "free", "busy", "gone"
_S_IFBLK = 0o060000


def device_number(path):
    """(major, minor) of the block device node at path; None if path is not there.
    Raises CannotRead for other errors, and for a path that is not a block device."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if is_absent(exc):
            return None
        raise CannotRead(path, exc) from None
    if (st.st_mode & 0o170000) != _S_IFBLK:
        raise CannotRead("%s: not a block device" % path)
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def _open_excl(path):
    fd = os.open(path, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        return os.major(st.st_rdev), os.minor(st.st_rdev)
    finally:
        os.close(fd)


def _claim(path, number, scratch):
    """In the child: FREE, BUSY or GONE for the device number (reached through path, or
    through a node made in scratch when path no longer leads to it)."""
    try:
        if path is not None:
            try:
                if _open_excl(path) == number:
                    return FREE
            except FileNotFoundError:
                pass  # the link is gone (an iSCSI session ended): ask by number
        node = os.path.join(scratch, "blk-%d-%d.%d" % (number[0], number[1], os.getpid()))
        os.mknod(node, _S_IFBLK | 0o600, os.makedev(*number))
        try:
            _open_excl(node)
        finally:
            os.unlink(node)
        return FREE
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            return BUSY
        if exc.errno in (errno.ENXIO, errno.ENODEV):
            return GONE  # no such disk any more: nothing on this node can write to it
        raise


def claim(path, number, scratch, timeout):
    """Whether the kernel would grant this device exclusively: FREE, BUSY or GONE.
    CannotRead when it cannot tell (an error, or no answer within timeout)."""
    from hasf import isolated  # not on the monitor and meta-data paths, which never claim

    os.makedirs(scratch, mode=0o700, exist_ok=True)
    try:
        return isolated.call(_claim, (path, number, scratch), timeout,
                             "an exclusive open of %s" % (path or "%d:%d" % number))
    except OSError as exc:
        raise CannotRead("an exclusive open of %s" % (path or "%d:%d" % number), exc) from None
    except (isolated.ChildTimedOut, isolated.ChildFailed) as exc:
        raise CannotRead(exc.message) from None


def holders(number, sysfs="/sys"):
    """What the kernel lists as holding the device (dm-0, md127, ...), by sysfs."""
    from hasf.kernel.attrs import entries

    return entries("%s/dev/block/%d:%d/holders" % (sysfs, number[0], number[1]))
