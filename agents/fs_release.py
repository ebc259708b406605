"""Releasing a filesystem from the whole node: what Filesystem's stop does.

A filesystem is released when the kernel no longer has its superblock in
use: no mount of its device in any mount namespace (bind mounts of its
subdirectories included) and, for a block device, an exclusive open is
granted.  To get there, each round unmounts what it finds -- in every
namespace, mounts stacked on ours and submounts first, deepest first -- and
when the kernel says EBUSY, finds the holders by mount id (in any namespace)
and, with force_unmount, sends them SIGTERM, then SIGKILL after the grace.
Every unmount runs in a bounded child (hasf.kernel.umount), so a filesystem
that no longer answers fails the stop in time, with a reason that names where
it is still mounted and who holds it; it is never detached lazily.
"""

import errno
import os
import time

from hasf.kernel import CannotRead, blockdev, holders, namespaces
from hasf.kernel.umount import unmount

SIGTERM, SIGKILL = 15, 9


class Target:
    """One mount to remove, in the view it can be removed from."""

    __slots__ = ("view", "mount", "order")

    def __init__(self, view, mount, order):
        self.view, self.mount, self.order = view, mount, order

    def sort_key(self):
        """Deepest first; at one mount point, the one on top first."""
        return (-self.mount.mount_point.count("/"), -self.order)


def targets(number, tables):
    """Every mount of the device, and every mount stacked on or under one of them, once
    each (mount ids are unique node-wide), in unmount order per view."""
    seen, found = set(), []
    for view, mounts in tables:
        ours = [(i, m) for i, m in enumerate(mounts) if m.device == number]
        for index, mount in enumerate(mounts):
            if mount.mount_id in seen:
                continue
            if any(index >= i and mount.under(m.mount_point) for i, m in ours):
                seen.add(mount.mount_id)
                found.append(Target(view, mount, index))
    return sorted(found, key=Target.sort_key)


def describe(found, limit=4):
    shown = ["%s on %s (%s)" % (t.mount.source, t.mount.mount_point, t.view)
             for t in found[:limit]]
    more = " and %d more" % (len(found) - limit) if len(found) > limit else ""
    return ", ".join(shown) + more


class Release:
    """Rounds of unmount / signal, until the device is free or the deadline passes."""

    def __init__(self, device, number, deadline, log, force=True, grace=1.0, scratch=None):
        """scratch: where a device node may be made for the exclusive-open check; None
        skips that check (a failed start taking back only the mount it just made)."""
        self.device, self.number, self.deadline, self.log = device, number, deadline, log
        self.force, self.grace, self.scratch = force, grace, scratch
        self.termed_at = None
        self.last = "nothing tried yet"
        self.last_holders = []

    def attempt(self):
        """One round; True once the kernel holds nothing of the device."""
        if self.deadline.remaining() < 0.05:
            return False  # no time for a child: keep the last real answer as the reason
        found = targets(self.number, namespaces.tables())
        if not found:
            return self._free()
        busy = []
        for target in found:
            error = self._unmount(target)
            if error == errno.EBUSY:
                busy.append(target)
        if busy:
            self._busy(found)
        return False

    def _unmount(self, target):
        """errno of umount2, 0 on success; errors other than busy/gone are remembered."""
        from hasf.isolated import ChildTimedOut

        mount = target.mount
        try:
            unmount(target.view, mount.mount_point, self.deadline.bound(30))
            self.log.info("unmounted %s from %s (%s)" % (mount.source, mount.mount_point,
                                                        target.view))
            return 0
        except ChildTimedOut as exc:
            self.last = exc.message
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT):  # gone meanwhile
                return 0
            self.last = "umount %s (%s): %s" % (mount.mount_point, target.view,
                                                exc.strerror or exc)
            return exc.errno
        return None

    def _busy(self, found):
        scan = holders.scan({t.mount.mount_id for t in found}, self.number)
        self.last_holders = scan.holders
        if not scan.holders or not self.force:
            extra = " (pids %s could not be inspected)" % scan.uninspectable \
                if scan.uninspectable else ""
            self.last = "still mounted on %s%s" % (describe(found), extra)
            return
        now = time.monotonic()
        if self.termed_at is None:
            self.termed_at = now
        sig = SIGTERM if now - self.termed_at < self.grace else SIGKILL
        self.log.warning("%s is busy; sending %s to %s" % (
            self.device, "SIGTERM" if sig == SIGTERM else "SIGKILL",
            ", ".join(map(repr, scan.holders))))
        for holder in scan.holders:
            try:
                os.kill(holder.pid, sig)
            except ProcessLookupError:
                pass
        self.last = "still mounted on %s" % describe(found)

    def _free(self):
        """No mount of it is visible anywhere; the kernel must agree."""
        if self.number is None or self.scratch is None:
            return True
        try:
            state = blockdev.claim(self.device, self.number, self.scratch, self.deadline.bound(10))
        except CannotRead as exc:
            self.last = exc.message
            return False
        if state != blockdev.BUSY:
            return True
        held = blockdev.holders(self.number)
        self.last = ("no mount of %s is visible, but the kernel still holds it%s (a lazily "
                     "detached mount, a mount namespace no process is in, or a device-mapper, "
                     "md or swap user)" % (self.device,
                                           ": held by " + ", ".join(held) if held else ""))
        return False

    def blame(self):
        text = "; " + self.last
        if self.last_holders:
            text += "; held by " + ", ".join(map(repr, self.last_holders[:5]))
            if len(self.last_holders) > 5:
                text += " and %d more" % (len(self.last_holders) - 5)
        return text
