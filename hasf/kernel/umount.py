"""Unmount one mount point in a given mount namespace -- in a bounded child.

umount2() of a filesystem that stopped answering can block (it syncs), and
a mount in another namespace (a container's copy, libvirt's per-qemu
namespace) can only be removed from inside that namespace: setns() is
refused to a multi-threaded process, and a chrooted or pivoted reader sees
paths relative to its own root.  A forked child does both and reports
the errno; the parent waits only until its deadline.
"""

import os

from hasf import isolated

CLONE_NEWNS = 0x00020000


def _umount_in(proc_dir, here, path):
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if not here:
        ns = os.open(proc_dir + "/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        root = os.open(proc_dir + "/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        if libc.setns(ns, CLONE_NEWNS) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "setns into %s: %s" % (proc_dir, os.strerror(err)))
        os.fchdir(root)
        os.chroot(".")
    if libc.umount2(path.encode(), 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return 0


def unmount(view, path, timeout):
    """umount2(path) as seen by view (hasf.kernel.namespaces.View).  Returns None on
    success; raises OSError (EBUSY: busy; EINVAL: not a mount point any more) or
    hasf.isolated.ChildTimedOut."""
    isolated.call(_umount_in, (view.proc_dir, view.here, path), timeout,
                  "unmounting %s in %r" % (path, view))
