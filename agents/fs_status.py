"""The depth-20 status file, written without following any link.

The status file lives on the shared filesystem, where anyone who can write
to it can plant a symlink; the monitor runs as root.  So every step is
relative to a directory descriptor and refuses links: each directory of the
prefix is made or opened with O_NOFOLLOW|O_DIRECTORY, and the file is
opened with O_NOFOLLOW (a planted link fails the monitor with ELOOP rather
than letting root write through it).  The write is one page with O_DIRECT
and O_SYNC: it must reach the device, not the page cache.  Runs in a
bounded child (hasf.isolated): the filesystem may not answer.
"""

import mmap
import os

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def write_status(mount_point, relative):
    """Write one synced block to mount_point/relative; OSError on any refusal."""
    parts = [p for p in relative.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise OSError(22, "not a relative path below the mount point", relative)
    fd = os.open(mount_point, _DIR)
    try:
        for name in parts[:-1]:
            try:
                os.mkdir(name, 0o700, dir_fd=fd)
            except FileExistsError:
                pass
            sub = os.open(name, _DIR, dir_fd=fd)
            os.close(fd)
            fd = sub
        _write_block(fd, parts[-1])
    finally:
        os.close(fd)


def _write_block(dir_fd, name):
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_SYNC
    try:
        fd = os.open(name, flags | os.O_DIRECT, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno != 22:  # EINVAL: no O_DIRECT on this filesystem
            raise
        fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
    try:
        block = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT needs
        os.write(fd, block)
        os.fsync(fd)
    finally:
        os.close(fd)
