"""Run one child process, bounded, without the subprocess module.

Why not subprocess: importing it pulls in signal, enum, re, locale and
collections -- ~5 ms on every exec of an agent whose monitor runs one tool
(tgtadm answers in 0.8 ms).  posix_spawn + pipes + poll is all hasf.runner
needs: a new session (so a timeout can kill the whole process group), stdin
from a payload or /dev/null, stdout/stderr captured, inherited descriptors
closed, and a deadline on all of it.
"""

import os
import select
import time

# Linux signal numbers (the signal module would import enum, ~4 ms)
SIGTERM, SIGKILL = 15, 9


class SpawnTimeout(Exception):
    """The child did not finish in time; it and its process group were killed."""


def _inherited_fds():
    """Descriptors above 2 that a child would inherit (close_fds for posix_spawn)."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return []
    fds = []
    for name in names:
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    fds.append(fd)
            except OSError:  # the descriptor listdir itself used, now closed
                pass
    return fds


def _reap(pid, seconds):
    """The exit status of pid once it has exited, waiting at most `seconds`; else None."""
    end = time.monotonic() + seconds
    delay = 0.0005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        left = end - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(delay, left))
        delay = min(delay * 2, 0.05)


def kill_group(pid, grace):
    """TERM, then KILL, the process group pid leads; reap pid.  Returns its status or None."""
    for sig, wait in ((SIGTERM, grace), (SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        status = _reap(pid, wait)
        if status is not None:
            return status
    return _reap(pid, 0)


def spawn(path, argv, environ, data=None, limit=None, grace=1.0):
    """Run path with argv in a new session; (exit code, stdout bytes, stderr bytes).

    data: bytes for stdin (else /dev/null).  limit: seconds, or None for no
    limit.  On expiry the process group gets TERM, then KILL after `grace`
    seconds, and SpawnTimeout is raised.  OSError when path cannot be executed."""
    end = None if limit is None else time.monotonic() + limit
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    if data is not None:
        in_r, in_w = os.pipe2(os.O_CLOEXEC)
    else:
        in_r, in_w = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), None
    actions = [(os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
               (os.POSIX_SPAWN_DUP2, err_w, 2)]
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inherited_fds()]
    try:
        pid = os.posix_spawn(path, argv, environ, file_actions=actions, setsid=True)
    except BaseException:
        for fd in (out_r, err_r, in_w):
            if fd is not None:
                os.close(fd)
        raise
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    status = None
    try:
        out, err = _communicate(out_r, err_r, in_w, data, end)
        status = _reap(pid, 5.0 if end is None else max(0.0, end - time.monotonic()))
        if status is None:
            raise SpawnTimeout()
        return os.waitstatus_to_exitcode(status), out, err
    except SpawnTimeout:
        status = kill_group(pid, grace)
        raise
    finally:
        if status is None:  # an error of our own (or an interrupt): leave no child behind
            kill_group(pid, 0)


def _communicate(out_r, err_r, in_w, data, end):
    """Feed stdin and read stdout/stderr until both close; SpawnTimeout at `end`."""
    chunks = {out_r: [], err_r: []}
    readers = {out_r, err_r}
    poller = select.poll()
    for fd in readers:
        poller.register(fd, select.POLLIN)
    pending = None
    if in_w is not None:
        pending = memoryview(data)
        os.set_blocking(in_w, False)
        poller.register(in_w, select.POLLOUT)
    try:
        while readers:
            wait = None if end is None else end - time.monotonic()
            if wait is not None and wait <= 0:
                raise SpawnTimeout()
            for fd, _ in poller.poll(None if wait is None else wait * 1000):
                if fd == in_w:
                    pending = _feed(in_w, pending)
                    if not pending:
                        poller.unregister(in_w)
                        os.close(in_w)
                        in_w = None
                    continue
                block = os.read(fd, 65536)
                if block:
                    chunks[fd].append(block)
                else:
                    poller.unregister(fd)
                    os.close(fd)
                    readers.discard(fd)
    finally:
        for fd in readers | ({in_w} if in_w is not None else set()):
            os.close(fd)
    return b"".join(chunks[out_r]), b"".join(chunks[err_r])


def _feed(fd, pending):
    """Write what the pipe takes; the rest, or b"" when done or the child closed stdin."""
    try:
        written = os.write(fd, pending)
    except BrokenPipeError:
        return b""
    except BlockingIOError:
        return pending
    return pending[written:]
