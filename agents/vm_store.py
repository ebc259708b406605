"""Every filesystem access of the VirtualMachine agent to paths that may be on shared storage.

The config file, the snapshot directory and its saved-state files, and the
monitor scripts usually live on a cluster store (OCFS2, NFS, an iSCSI
disk).  When that store hangs -- OCFS2 waiting for DLM recovery after a node
death, i.e. exactly at failover -- a stat or read puts the caller in
uninterruptible sleep.  So none of these run in the agent's own process:
each is a small function run by hasf.isolated.call in a forked child,
bounded by the operation's deadline and abandoned at it.

What the answers mean, fail-closed: ENOENT/ENOTDIR are "not there" (the
caller decides what absence means); a timeout or any other error is
StoreUnreadable, a CannotTell (an error: never "not running", never a
successful stop on its own).
"""

import os
import stat  # already loaded by os; imported here, not in the child

from hasf.kernel import ABSENT
from hasf.ocf.errors import CannotTell

#: a domain XML larger than this is not one (and is not read whole)
MAX_CONFIG = 4 * 1024 * 1024


class StoreUnreadable(CannotTell):
    """A path on the store could not be read in time, or failed with an error other than absence."""


def _bounded(func, args, deadline, what):
    """func(*args) in a bounded child; OSError kept (errno), anything else StoreUnreadable."""
    from hasf import isolated

    timeout = deadline.remaining()
    if timeout <= 0:
        raise StoreUnreadable("%s: no time left before the operation timeout" % what)
    try:
        return isolated.call(func, args, timeout, what)
    except (isolated.ChildTimedOut, isolated.ChildFailed) as exc:
        raise StoreUnreadable(str(exc)) from None


def _reason(exc):
    return exc.strerror or str(exc)


# --- the config file -----------------------------------------------------------------------
def _read_config(path):
    with open(path, "rb") as handle:
        return handle.read(MAX_CONFIG + 1)


def read_config(path, deadline):
    """The config file's bytes; ConfigUnavailable when it is not there, PermissionDenied,
    StoreUnreadable for a timeout or any other error."""
    from hasf.agents.vm_config import ConfigUnavailable, NotConfigured
    from hasf.ocf.errors import PermissionDenied

    try:
        data = _bounded(_read_config, (path,), deadline, "reading config file %s" % path)
    except OSError as exc:
        if exc.errno in ABSENT:
            raise ConfigUnavailable("config file %s does not exist" % path) from None
        if isinstance(exc, PermissionError):
            raise PermissionDenied("config file %s is not readable" % path) from None
        raise StoreUnreadable("cannot read config file %s: %s" % (path, _reason(exc))) from None
    if len(data) > MAX_CONFIG:
        raise NotConfigured("config file %s is larger than 4 MiB: not a domain XML" % path)
    return data


# --- validation: snapshot directory and monitor scripts ------------------------------------
def _check_paths(snapshot, scripts):
    """Problems with the snapshot directory and scripts, as text; OSError for what is unclear."""
    problems = []
    if snapshot:
        try:
            if not stat.S_ISDIR(os.stat(snapshot).st_mode):
                problems.append("snapshot %s is not a directory" % snapshot)
        except OSError as exc:
            if exc.errno not in ABSENT:
                raise
            problems.append("snapshot directory %s does not exist" % snapshot)
    for script in scripts:
        try:
            mode = os.stat(script).st_mode
        except OSError as exc:
            if exc.errno not in ABSENT:
                raise
            problems.append("monitor script %s does not exist" % script)
            continue
        if not (stat.S_ISREG(mode) and os.access(script, os.X_OK)):
            problems.append("monitor script %s is not an executable file" % script)
    return problems


def check_paths(snapshot, scripts, deadline):
    """What is missing of the snapshot directory and monitor scripts (NotInstalled material)."""
    if not snapshot and not scripts:
        return []
    try:
        return _bounded(_check_paths, (snapshot, list(scripts)), deadline,
                        "checking the snapshot directory and monitor scripts")
    except OSError as exc:
        raise StoreUnreadable("cannot check %s: %s" % (exc.filename or "a path",
                                                       _reason(exc))) from None


# --- the saved-state file (snapshot) -------------------------------------------------------
def _absent_is_false(operation, path):
    """operation(path) -> True; False when path is not there (ENOENT/ENOTDIR); else raise."""
    try:
        operation(path)
        return True
    except OSError as exc:
        if exc.errno in ABSENT:
            return False
        raise


def _on_store(operation, path, deadline, doing, verb):
    """_absent_is_false in the bounded child; StoreUnreadable when the store cannot tell."""
    try:
        return _bounded(_absent_is_false, (operation, path), deadline, "%s %s" % (doing, path))
    except OSError as exc:
        raise StoreUnreadable("cannot %s %s: %s" % (verb, path, _reason(exc))) from None


def exists(path, deadline):
    """Whether path exists; StoreUnreadable when the store cannot tell."""
    return _on_store(os.stat, path, deadline, "looking for", "look for")


def unlink(path, deadline):
    """Remove path (absent is fine); StoreUnreadable when that fails or hangs."""
    return _on_store(os.unlink, path, deadline, "removing", "remove")


# --- save_config_on_stop -------------------------------------------------------------------
def _replace(path, data):
    """Write data over path atomically; False when path already holds exactly data.

    The temporary file is new (O_CREAT|O_EXCL), is never a link
    (O_NOFOLLOW), has an unpredictable name in the same directory (so the
    rename stays on one filesystem), and gets the original file's mode and
    owner before any byte is written (the XML holds graphics passwords);
    data is fsync'd before the rename and the directory after it, so a crash
    leaves the old or the new config, never half of one.
    """
    try:
        old = os.stat(path)
    except OSError as exc:
        if exc.errno not in ABSENT:
            raise
        old = None
    if old is not None:
        try:
            with open(path, "rb") as handle:
                if handle.read(MAX_CONFIG + 1) == data:
                    return False
        except OSError as exc:
            if exc.errno not in ABSENT:
                raise
    directory, base = os.path.split(path)
    tmp = os.path.join(directory, ".%s.%s.tmp" % (base, os.urandom(8).hex()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        if old is not None:
            os.fchown(fd, old.st_uid, old.st_gid)
            os.fchmod(fd, old.st_mode & 0o7777)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    dfd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return True


def replace(path, data, deadline):
    """_replace in a bounded child: True when written, False when unchanged."""
    try:
        return _bounded(_replace, (path, data), deadline, "writing %s" % path)
    except OSError as exc:
        raise StoreUnreadable("cannot write %s: %s" % (path, _reason(exc))) from None
