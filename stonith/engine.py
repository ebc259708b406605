"""The fencing engine: the one place that owns fencing semantics.

Devices answer five questions only -- power status of a target, power on,
power off, list targets, device health (`Device`).  Everything that decides
whether a node counts as fenced lives here, after FenceAgentAPI and
fence-agents' `fence_action`, minus its weaknesses:

- `off` succeeds only when a status read says "off" within `power_timeout`
  after the off request; a target already off is success without a request.
  A device that keeps saying "on" (a BMC that lies), errors while polling,
  or silence until the timeout are all failures (`PowerTimeout`).
- `reboot` is a verified off followed by on.  If on fails after the verified
  off, the node *is* fenced: the failure is logged and the reboot succeeds.
  A device whose reboot command restarts the machine by itself (the demo
  device's sysrq reboot: software cannot switch a machine on) is done at the
  verified off: waiting for the node to come back would hold the cluster's
  recovery until the fenced node rejoins.
  There is no "power cycle" path: a cycle command cannot be verified.
- `on` is verified the same way and retried `retry_on` times.
- `delay` (fixed) and `random_delay` (uniform 0..N s) run before off and
  reboot only, so the two nodes of a split two-node cluster do not shoot
  each other at the same instant.
- Clock, sleep and the random source are injectable: tests run the waiting
  logic without waiting.
"""

import time

from hasf.deadline import Deadline
from hasf.stonith.errors import DeviceError, FenceError, PowerTimeout, StatusUnknown

ON, OFF = "on", "off"


class Device:
    """A power switch.  Subclasses implement these; all may raise DeviceError."""

    #: True when the device fences exactly one machine (IPMI BMC): targets are
    #: not addressable, the engine still passes the node name through.
    single_target = False

    #: True when the reboot request restarts the machine by itself and there
    #: is nothing to switch on: the engine's reboot ends at the verified off.
    restarts_by_itself = False

    def status(self, target, deadline):
        """ON or OFF (anything else: raise StatusUnknown)."""
        raise NotImplementedError

    def power_on(self, target, deadline):
        raise NotImplementedError

    def power_off(self, target, deadline, reboot=False):
        """Request power off; `reboot` tells devices with a different "take it
        down" command for reboots (the demo device) which one to use."""
        raise NotImplementedError

    def list_targets(self, deadline):
        """[(target, alias)] this device can fence."""
        raise NotImplementedError

    def health(self, deadline):
        """Return normally if the device answers and accepts our credentials."""
        raise NotImplementedError

    def resume_reboot(self, target):
        """A reboot of target is requested: a device that remembers its acts across
        processes (act_record.py) may take up one it sent in an earlier attempt."""

    def reboot_verified(self, target):
        """The reboot of target reached its verified off: nothing is left to resume."""

    def close(self):
        pass


class Engine:
    def __init__(self, device, log, *, power_timeout=20.0, power_wait=0.0, status_interval=0.5,
                 retry_on=1, delay=0.0, random_delay=0.0, command_timeout=None,
                 clock=time.monotonic, sleep=time.sleep, rand=None):
        self.device = device
        self.log = log
        self.power_timeout = power_timeout
        self.power_wait = power_wait
        self.status_interval = max(0.01, status_interval)
        self.retry_on = max(0, int(retry_on))
        self.delay = delay
        self.random_delay = random_delay
        self.command_timeout = command_timeout
        self._clock, self._sleep, self._rand = clock, sleep, rand

    def _deadline(self, seconds):
        return Deadline(seconds, self._clock, self._sleep)

    def _command_deadline(self):
        return self._deadline(self.command_timeout or max(self.power_timeout, 5.0))

    # -- reads ------------------------------------------------------------------
    def status(self, target):
        state = self.device.status(target, self._command_deadline())
        if state not in (ON, OFF):
            raise StatusUnknown("device reported %r for %s, not on/off" % (state, target))
        return state

    def list(self):
        return self.device.list_targets(self._command_deadline())

    def list_status(self):
        out = []
        for target, alias in self.list():
            try:
                state = self.status(target)
            except FenceError:
                state = "unknown"
            out.append((target, alias, state))
        return out

    def monitor(self):
        self.device.health(self._command_deadline())

    # -- actions ------------------------------------------------------------------
    def _run_delay(self):
        wait = self.delay
        if self.random_delay > 0:
            if self._rand is None:
                import random

                self._rand = random.uniform
            wait += self._rand(0, self.random_delay)
        if wait > 0:
            self.log.info("delaying fencing by %.1f s" % wait)
            self._sleep(wait)

    def _wait_for(self, target, want):
        """Poll status until it is `want` within power_timeout; the reason otherwise."""
        deadline = self._deadline(self.power_timeout)
        last = {"state": None, "errors": {}}

        def reached():
            try:
                state = self.device.status(target, deadline.sub(self.command_timeout))
            except DeviceError as exc:
                # distinct reasons, latest last: a call cut short by the deadline
                # must not hide the answer the device gave before
                last["errors"].pop(str(exc), None)
                last["errors"][str(exc)] = True
                self.log.debug("status of %s while waiting for %s: %s" % (target, want, exc))
                return False
            last["state"] = state
            return state == want

        if self.power_wait > 0:
            deadline.sleep(self.power_wait)
        if deadline.wait_for(reached, self.status_interval):
            return
        why = "it still reports %s" % last["state"] if last["state"] else "no status read"
        if last["errors"]:
            why += " (errors: %s)" % "; ".join(list(last["errors"])[-2:])
        raise PowerTimeout("%s did not power %s within %.0f s: %s"
                           % (target, want, self.power_timeout, why))

    def off(self, target, reboot=False):
        """Power target off and verify it; returns a one-line result."""
        if self.status(target) == OFF:
            self.log.info("%s is already off" % target)
            return "already off"
        self.device.power_off(target, self._command_deadline(), reboot=reboot)
        self._wait_for(target, OFF)
        self.log.info("%s is off (verified)" % target)
        return "off"

    def on(self, target, attempts=None):
        attempts = 1 + self.retry_on if attempts is None else max(1, attempts)
        if self.status(target) == ON:
            return "already on"
        error = None
        for attempt in range(1, attempts + 1):
            try:
                self.device.power_on(target, self._command_deadline())
                self._wait_for(target, ON)
                return "on"
            except FenceError as exc:
                error = exc
                self.log.warning("power on %s, attempt %d of %d: %s"
                                 % (target, attempt, attempts, exc))
        raise error

    def fence_off(self, target):
        self._run_delay()
        return self.off(target)

    def reboot(self, target):
        """Verified off, then on; a failed on after a verified off still fenced the node."""
        self._run_delay()
        self.device.resume_reboot(target)
        self.off(target, reboot=True)
        self.device.reboot_verified(target)
        if self.device.restarts_by_itself:
            self.log.info("%s was verified off; it restarts by itself (not waited for)" % target)
            return "rebooted"
        try:
            self.on(target, attempts=max(1, self.retry_on))
        except FenceError as exc:
            self.log.error("%s was verified off but did not come back on: %s; "
                           "fencing succeeded" % (target, exc))
            return "off; power on failed"
        return "rebooted"
