"""What a software fencing device did, remembered past its own process.

pacemaker-fenced runs a new agent process for every attempt of one fence
request.  The demo device (demo.py) counts a node as off only after it sent
the power command itself; when the attempt that sent a reboot fails while
verifying it (a status read that hangs on the node going down, a slow sysrq
under load), the retry is a new process that never sent anything, finds the
node unreachable and fails closed -- though the node is, in fact, rebooting.
The fence then succeeds only once the node is back and is rebooted a second
time, if the stonith-timeout allows.

An act record closes that gap without trusting anything new: the attempt
that sent the reboot writes (target, the target's boot id before, when, on
which boot of this host) and a later attempt of a reboot request takes it
as its own act, for a bounded time.  Whoever can write a record can make an
unreachable node count as off, so records live in a directory that only
this user can write, are opened without following links, and are ignored --
the device then fails closed as before -- unless directory and file belong
to this user and nobody else may read or write them.
"""

import os
import stat
import time

BOOT_ID = "/proc/sys/kernel/random/boot_id"


class ActRecords:
    """Reboot commands this device sent, one root-only file per target."""

    def __init__(self, directory, lifetime, log):
        self.directory = directory
        self.lifetime = lifetime
        self.log = log

    def _path(self, target):
        safe = "".join(c if c.isalnum() or c in "._-" else "%%%02x" % ord(c) for c in target)
        return os.path.join(self.directory, safe)

    def _private_directory(self, create):
        """True when the directory is this user's alone (created 0700 if asked and missing)."""
        try:
            st = os.lstat(self.directory)
        except FileNotFoundError:
            if not create:
                return False
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            st = os.lstat(self.directory)
        if _private(st, stat.S_ISDIR):
            return True
        self.log.warning("act records ignored: %s is not a directory that only uid %d can use"
                         % (self.directory, os.geteuid()))
        return False

    def remember(self, target, boot_id):
        """Record that a reboot command for target left while it ran boot `boot_id`."""
        import json  # here, not at the top: json brings re and enum (~8 ms) to every exec,
        # meta-data and status included, and only a reboot attempt reads or writes a record

        text = json.dumps({"target": target, "boot_id": boot_id, "at": time.monotonic(),
                           "host_boot": _host_boot()})
        try:
            if not self._private_directory(create=True):
                return
            path = self._path(target)
            tmp = "%s.%d.tmp" % (path, os.getpid())
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:  # only liveness is lost: a retry fails closed
            self.log.warning("cannot record the reboot command sent to %s: %s" % (target, exc))

    def unfinished(self, target):
        """The boot id a recorded, still valid reboot command found on target, or None."""
        import json

        try:
            if not self._private_directory(create=False):
                return None
            fd = os.open(self._path(target), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            if not _private(os.fstat(fd), stat.S_ISREG):
                self.log.warning("act record for %s ignored: not private to uid %d"
                                 % (target, os.geteuid()))
                return None
            record = json.loads(os.read(fd, 65536).decode())
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)
        return self._valid(target, record)

    def _valid(self, target, record):
        """Only this target's record, from this boot of this host, younger than the lifetime."""
        if not isinstance(record, dict) or record.get("target") != target:
            return None
        at, here = record.get("at"), _host_boot()
        if not isinstance(at, (int, float)) or not here or record.get("host_boot") != here:
            return None
        if not 0 <= time.monotonic() - at <= self.lifetime:
            return None
        boot_id = record.get("boot_id")
        return boot_id if isinstance(boot_id, str) and boot_id else None

    def forget(self, target):
        """The reboot was verified: no later request may count on this act."""
        try:
            os.unlink(self._path(target))
        except FileNotFoundError:
            pass
        except OSError as exc:
            self.log.warning("cannot remove the act record for %s: %s" % (target, exc))


def _private(st, is_kind):
    return (is_kind(st.st_mode) and st.st_uid == os.geteuid()
            and not st.st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def _host_boot():
    try:
        with open(BOOT_ID) as handle:
            return handle.read().strip()
    except OSError:
        return None
