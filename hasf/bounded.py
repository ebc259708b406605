"""Calls into libraries that cannot time out, given a bound anyway.

libvirt-python has no connect or call timeout: a libvirtd that accepts on
its socket but never answers would block an agent or a fence device until
Pacemaker kills it (a failed stop, a failed fence).  So such calls run in a
helper thread and the caller gives up at its deadline.  A call that times
out is abandoned -- libvirt calls cannot be cancelled -- and its thread dies
with the process.  Built on _thread, not threading: the monitor path should
not pay for importing threading.
"""

import _thread

from hasf.errors import HasfError


class TimedOut(HasfError):
    """The call did not return within its bound (callers translate it)."""


def call(func, args=(), timeout=None, what="call"):
    """func(*args) in a helper thread: its value, its exception, or TimedOut."""
    box = []
    done = _thread.allocate_lock()
    done.acquire()

    def target():
        try:
            box.append((True, func(*args)))
        except BaseException as exc:  # noqa: BLE001 -- handed to the caller below
            box.append((False, exc))
        finally:
            done.release()

    _thread.start_new_thread(target, ())
    if not done.acquire(True, -1 if timeout is None else max(0.001, timeout)):
        raise TimedOut("%s did not return within %.1fs" % (what, timeout or 0))
    ok, value = box[0]
    if ok:
        return value
    raise value
