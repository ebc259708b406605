"""Run one function in a forked child, bounded: for work that touches storage.

A read or write on a dead filesystem (NFS gone, an iSCSI disk in recovery,
OCFS2 waiting for DLM recovery after a node death -- exactly at failover)
puts the caller in uninterruptible sleep (D state), where no timeout and no
signal reaches it.  If that caller were the agent itself, Pacemaker would
kill it at the operation timeout and never get a reason.  So every access to
shared storage runs in a forked child; the agent waits for its answer until
the deadline and then abandons it (SIGKILL, not waited for: a process in D
state cannot be reaped until the kernel lets go).

fork without exec: ~1 ms, no interpreter start-up, and the function sees
the agent's state.  The child does nothing but the function and exits with
os._exit (no atexit handlers, no flushing of the parent's buffers).  Values
and errors travel back through a pipe with marshal (builtins only); an
OSError keeps its errno, so "absent" (ENOENT) stays distinguishable from
"cannot tell" (EIO, EACCES) on the caller's side.
"""

import marshal
import os
import select
import time

from hasf.errors import HasfError

SIGKILL = 9


class ChildTimedOut(HasfError):
    """The child did not answer within its bound; it was killed and abandoned."""


class ChildFailed(HasfError):
    """The child raised something other than OSError, or died without answering."""


def _child(write_fd, func, args):
    try:
        try:
            payload = (0, func(*args))
        except OSError as exc:
            payload = (1, exc.errno or 0, exc.strerror or str(exc), exc.filename)
        except BaseException as exc:  # noqa: BLE001 -- carried to the parent as text
            payload = (2, type(exc).__name__, str(exc))
        data = marshal.dumps(payload)
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view):]
    finally:
        os._exit(0)


def _read_until(fd, end):
    """Everything the child writes, until EOF; None if `end` passes first."""
    chunks = []
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return None
        if not poller.poll(left * 1000):
            continue
        block = os.read(fd, 65536)
        if not block:
            return b"".join(chunks)
        chunks.append(block)


def call(func, args=(), timeout=5.0, what="storage access"):
    """func(*args) in a forked child within `timeout` seconds: its value (marshal-able),
    the OSError it raised (same errno), ChildFailed, or ChildTimedOut."""
    end = time.monotonic() + max(0.0, timeout)
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover -- the child never returns
        os.close(read_fd)
        _child(write_fd, func, args)
    os.close(write_fd)
    try:
        data = _read_until(read_fd, end)
    finally:
        os.close(read_fd)
    if data is None:
        _abandon(pid)
        raise ChildTimedOut("%s did not finish within %.1fs (storage not answering?); "
                            "abandoned it" % (what, timeout))
    _reap(pid)
    if not data:
        raise ChildFailed("%s: the child process died without answering" % what)
    payload = marshal.loads(data)
    if payload[0] == 0:
        return payload[1]
    if payload[0] == 1:
        _kind, errno_, strerror, filename = payload
        raise OSError(errno_, strerror, filename)
    raise ChildFailed("%s failed: %s: %s" % (what, payload[1], payload[2]))


def _reap(pid):
    """The child has answered and exits at once; reap it without blocking for long."""
    for _ in range(200):
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.0005)


def _abandon(pid):
    """SIGKILL the child; reap it if it went, else leave it (a D-state child cannot go)."""
    try:
        os.kill(pid, SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
