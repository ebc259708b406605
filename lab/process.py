"""Bounded waiting and process-group lifecycles that every lab part shares.

Why: the lab drives daemons and guests that become ready asynchronously
(ipmi_sim, tgtd, libvirtd, qemu, sshd and Pacemaker inside the guests);
every wait must be bounded so a broken daemon fails the run instead of
hanging it, and every process the lab starts leads its own process group so
one SIGKILL ends it with everything it forked.  The tests' own rigs
(tests/support) use the same helpers.
"""

import os
import signal
import subprocess
import time


class WaitTimeout(AssertionError):
    """A predicate did not become true in time (an AssertionError so pytest
    shows it as a test failure, not an infrastructure crash)."""


def wait_until(predicate, timeout=10.0, interval=0.1, message=None):
    """Call ``predicate()`` until it returns a truthy value; return that value.

    Exceptions raised by the predicate count as "not yet" (the last one is
    chained into the WaitTimeout).  Raises WaitTimeout after ``timeout``
    seconds; the predicate is always tried at least once.
    """
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
        except Exception as exc:  # noqa: BLE001 - "not ready yet"
            value, last_exc = None, exc
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            what = message or getattr(predicate, "__name__", repr(predicate))
            err = WaitTimeout("timed out after %.1fs waiting for %s" % (timeout, what))
            if last_exc is not None:
                raise err from last_exc
            raise err
        time.sleep(min(interval, remaining))


def kill_group(proc, wait=5):
    """SIGKILL the process group a helper daemon leads, and reap it (bounded)."""
    if proc is None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        pass


def kill_pid(pid, wait=5.0):
    """SIGKILL one process we started but do not parent (qemu run by ipmi_sim),
    and wait (bounded) until it is gone."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def pid_alive(pid):
    """Whether ``pid`` is a live process (a zombie counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def tail(path, chars=4000):
    """The last ``chars`` of a log file, for error messages."""
    if not path:
        return "(none)"
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - chars))
            return handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return "(no %s)" % path


class Service:
    """start() returns self, stop() is idempotent and cleans up everything;
    used as a context manager, a start that fails half-way is stopped before
    the error propagates, so no daemon outlives a broken run."""

    def start(self):
        raise NotImplementedError

    def stop(self):
        raise NotImplementedError

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
