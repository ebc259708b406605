"""Deadlines: every wait and every external call in hasf is bounded by one.

An OCF operation has a timeout (OCF_RESKEY_CRM_meta_timeout); when it passes,
Pacemaker kills the agent and treats the operation as failed (a failed stop
means fencing).  So the agent keeps a `Deadline` for the whole operation and
derives every command's timeout from what is left, minus a margin to report
a clean error before Pacemaker's own timer fires.  Clock and sleep are
injectable so waiting logic is tested without waiting.
"""

import time


class Deadline:
    """A point in monotonic time after which work must stop."""

    def __init__(self, seconds, clock=time.monotonic, sleep=time.sleep):
        self._clock = clock
        self._sleep = sleep
        self.seconds = float(seconds)
        self.expires = clock() + self.seconds

    @classmethod
    def at(cls, expires, clock=time.monotonic, sleep=time.sleep):
        d = cls(0, clock, sleep)
        d.expires = expires
        d.seconds = max(0.0, expires - clock())
        return d

    def remaining(self):
        return max(0.0, self.expires - self._clock())

    def expired(self):
        return self.remaining() <= 0.0

    def sub(self, seconds=None, fraction=None):
        """A deadline inside this one: `seconds` from now or a `fraction` of what is left."""
        left = self.remaining()
        if fraction is not None:
            left = left * fraction
        if seconds is not None:
            left = min(left, seconds)
        return Deadline.at(self._clock() + left, self._clock, self._sleep)

    def bound(self, timeout=None):
        """The timeout to give one call: `timeout` capped by what is left."""
        left = self.remaining()
        return left if timeout is None else min(left, timeout)

    def wait_for(self, predicate, interval=0.5, max_interval=None):
        """Poll predicate() until it returns a truthy value or the deadline passes.

        Returns the truthy value, or None on expiry.  The interval may grow
        (doubling up to max_interval) so long waits do not hammer a daemon.
        A sleep that ends at the deadline is not followed by one more call: the
        predicate usually runs a command, which would start with no time left and
        fail with "no time left" instead of the caller's own reason.
        """
        delay = interval
        while True:
            value = predicate()
            if value:
                return value
            left = self.remaining()
            if left <= 0:
                return None
            self._sleep(min(delay, left))
            if self.expired():
                return None
            if max_interval:
                delay = min(delay * 2, max_interval)

    def sleep(self, seconds):
        self._sleep(min(seconds, self.remaining()))

    def __repr__(self):
        return "Deadline(%.1fs left)" % self.remaining()


def forever():
    """For entry points run by hand with no operation timeout (one day)."""
    return Deadline(86400)
