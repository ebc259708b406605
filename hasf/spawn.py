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


#: Of a call's time, at most this much is kept back to end a child that overruns:
#: TERM, a grace, KILL, and a short wait to reap it -- all before the caller's limit.
END_BUDGET = 1.5
#: ... and never more than this share of the limit (a 2 s call keeps 0.5 s back).
END_SHARE = 0.25
#: Once a child is KILLed, at most this long is spent waiting to reap it.
REAP_AFTER_KILL = 0.5


class SpawnTimeout(Exception):
    """The child did not finish in time; it and its process group were killed.

    `abandoned` is True when the child still existed after SIGKILL (stuck in the
    kernel, e.g. D state on a dead NFS or iSCSI disk): it was left behind, not
    waited for, so the caller still returns inside its limit."""

    def __init__(self, abandoned=False, partial=(b"", b"")):
        super().__init__("abandoned" if abandoned else "killed")
        self.abandoned = abandoned
        #: (stdout, stderr) the child had written before it was killed: a caller may
        #: need to know how far it got (ssh's record that a command left, ...)
        self.partial = partial


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


def _reap(pid, end):
    """The exit status of pid once it has exited, polling until monotonic `end`; else None."""
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


def end_budget(limit, grace):
    """(TERM grace, reap after KILL): what a call of `limit` seconds keeps back to end
    its child.  Why a share of the limit: with the old fixed grace + 5 s + 5 s, a 2 s
    call whose child ignored TERM returned after 3 s, one in D state after 13 s --
    after Pacemaker had killed the agent that was to report it."""
    budget = min(END_BUDGET, grace + REAP_AFTER_KILL, max(0.0, limit) * END_SHARE)
    term = budget * grace / (grace + REAP_AFTER_KILL)
    return term, budget - term


def kill_group(pid, term_until, kill_until):
    """TERM the process group pid leads, KILL it at monotonic `term_until`, reap pid by
    `kill_until`.  Returns its status, or None when it is still there (abandoned)."""
    for sig, until in ((SIGTERM, term_until), (SIGKILL, kill_until)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        status = _reap(pid, until)
        if status is not None:
            return status
    return _reap(pid, 0)


def spawn(path, argv, environ, data=None, limit=None, grace=1.0):
    """Run path with argv in a new session; (exit code, stdout bytes, stderr bytes).

    data: bytes for stdin (else /dev/null).  limit: seconds the whole call may
    take, or None for no limit.  The child gets the limit minus `end_budget`;
    then its process group gets TERM, KILL after the grace, and SpawnTimeout
    is raised no later than `limit` after the call began -- a child that
    survives SIGKILL is abandoned.  OSError when path cannot be executed."""
    ends = _ends(time.monotonic(), limit, grace)
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
    settled = False
    try:
        out, err = _communicate(out_r, err_r, in_w, data, ends[0])
        status = _reap(pid, time.monotonic() + 5.0 if ends[0] is None else ends[0])
        if status is None:
            raise SpawnTimeout()
        settled = True
        return os.waitstatus_to_exitcode(status), out, err
    except SpawnTimeout as exc:
        settled = True
        _, term_end, final_end = ends
        if term_end is None:  # no limit: the child closed its output but did not exit
            term_end = time.monotonic() + grace
            final_end = term_end + REAP_AFTER_KILL
        if kill_group(pid, term_end, final_end) is None:
            raise SpawnTimeout(abandoned=True, partial=exc.partial) from None
        raise
    finally:
        if not settled:  # an error of our own (or an interrupt): leave no child behind
            now = time.monotonic()
            kill_group(pid, now, now + 0.1)


def _ends(start, limit, grace):
    """(child's end, TERM's end, the call's end) in monotonic time; Nones for no limit."""
    if limit is None:
        return None, None, None
    term_grace, kill_wait = end_budget(limit, grace)
    final = start + max(0.0, limit)
    return final - kill_wait - term_grace, final - kill_wait, final


def _communicate(out_r, err_r, in_w, data, end):
    """Feed stdin and read stdout/stderr until both close; SpawnTimeout at `end` (or never)."""
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
                raise SpawnTimeout(partial=(b"".join(chunks[out_r]), b"".join(chunks[err_r])))
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
