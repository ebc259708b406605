"""Bounded polling shared by every helper in ``support``.

Why: daemons (corosync, pacemaker, libvirtd, ipmi_sim, sshd) become ready
asynchronously; every wait in the test infrastructure must be bounded so a
broken daemon fails a test instead of hanging the whole run.
"""

import time


class WaitTimeout(AssertionError):
    """Raised when a predicate did not become true in time (an AssertionError
    so pytest shows it as a test failure, not an infrastructure crash)."""


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
