"""State files and locks under HA_RSCTMP, as ClusterLabs agents keep them.

HA_RSCTMP (default /run/resource-agents) is a tmpfs cleared at boot: exactly
the lifetime an agent's memory of "what I started here" should have.  Writes
are atomic (temp file + rename, mode 0600) so a killed agent never leaves a
half-written state file, and locks are flock()s that die with their holder.
"""

import errno
import fcntl
import os

from hasf.deadline import Deadline
from hasf.ocf.errors import GenericError

DEFAULT_RSCTMP = "/run/resource-agents"
_SAFE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")


def rsctmp(environ=None):
    env = os.environ if environ is None else environ
    return env.get("HA_RSCTMP") or DEFAULT_RSCTMP


def safe_name(*parts):
    """A file name built from agent/instance names, with nothing but safe characters."""
    name = "-".join(p for p in parts if p)
    return "".join(c if c in _SAFE_CHARS else "_" for c in name).lstrip(".") or "_"


class StateFile:
    def __init__(self, name, environ=None):
        self.path = os.path.join(rsctmp(environ), safe_name(name))

    def read(self):
        """The stored text, or None if there is none."""
        try:
            with open(self.path) as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def write(self, text):
        os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
        tmp = "%s.%d.tmp" % (self.path, os.getpid())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)

    def remove(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def exists(self):
        return os.path.exists(self.path)


class Lock:
    """An exclusive flock on HA_RSCTMP/<name>.lock, waited for within a deadline.

    Needed where a tool is not safe to run concurrently (targetcli, tgtadm
    sequences): two resources on one node must not interleave their calls.
    """

    def __init__(self, name, deadline=None, environ=None, interval=0.1):
        self.path = os.path.join(rsctmp(environ), safe_name(name) + ".lock")
        self.deadline = deadline or Deadline(30)
        self.interval = interval
        self.fd = None

    def _try(self):
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            return False

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if not self.deadline.wait_for(self._try, self.interval):
            os.close(self.fd)
            self.fd = None
            raise GenericError("timed out waiting for lock %s" % self.path)
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
        return False
