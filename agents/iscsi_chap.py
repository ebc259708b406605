"""CHAP for ocf:hasf:iscsi: credentials into open-iscsi's node record, never into argv.

Why not `iscsiadm -m node -o update -n node.session.auth.password -v SECRET`:
the value would be on iscsiadm's command line, which every local user reads
in /proc/PID/cmdline (and `ps` shows).  iscsiadm takes the settings of a
login from the node record it reads from disk, and hands the record to iscsid
over its management socket, so writing the record file ourselves keeps the
secret in two root-only places: that file (mode 0600) and iscsid's memory.

Layout and format, as open-iscsi 2.1.8 (Debian 12) keeps them:

- /etc/iscsi/nodes/<target>/<address>,<port>,<tpgt>/<iface>: a record made by
  sendtargets discovery, one file per interface ("default");
- /etc/iscsi/nodes/<target>/<address>,<port>: an old-style record, which is
  also what `iscsiadm -m node -o new` (discovery_type=static, tpgt unknown)
  makes.  The address is written without IPv6 brackets.
- lines `name = value`: leading and trailing white space is dropped, `#`
  starts a comment, the last occurrence of a name wins, a line over 2047
  bytes is skipped; strings hold at most 255 bytes (AUTH_STR_MAX_LEN 256 with
  the NUL).  The password lengths are derived from the passwords on reading.
- writers serialize on /run/lock/iscsi: link(lock, lock.write) succeeds for
  one writer at a time, and iscsiadm waits up to 30 s for it (10 ms polls).

Both ways of making the record -- sendtargets discovery and `iscsiadm -m
node -o new` -- write it afresh from iscsid.conf's defaults, also when it
exists (seen with 2.1.8), and the agent makes it before every login.  So
credentials an earlier start wrote never outlive the next start, and with
no CHAP parameters the record holds what iscsid.conf says, as it does under
heartbeat/iscsi, whose users keep CHAP there.

Discovery CHAP (discovery.sendtargets.auth.*) is not written: the sendtargets
record is made and used by one `iscsiadm -m discovery` call, with no moment
between the two for a file write.  A portal that demands CHAP for discovery
fails the discovery, and the agent says to use discovery_type=static.
"""

import errno
import os
import stat
import time

from hasf.errors import HasfError
from hasf.secret import Secret, reveal

NODES_DIR = "/etc/iscsi/nodes"
LOCK_DIR = "/run/lock/iscsi"
LOCK_WAIT = 30.0   # what iscsiadm itself waits for the database lock
MAX_VALUE = 255    # open-iscsi's AUTH_STR_MAX_LEN (256) less the NUL

PREFIX = "node.session.auth."
#: the record keys this module owns when CHAP is set: replaced by what it writes
AUTH_KEYS = tuple(PREFIX + k for k in (
    "authmethod", "username", "password", "password_length", "username_in", "password_in",
    "password_in_length"))
END = "# END RECORD"


class CredentialFileError(HasfError):
    """A password file cannot be used (missing, unreadable, empty, or readable by others)."""


class NodeRecordError(HasfError):
    """The node record cannot be found, locked, read or written."""


def is_chap_value(text):
    """A value open-iscsi keeps intact: 1..255 bytes, no control characters, no white space
    at either end (the record parser strips it, so the target would see another value)."""
    return (0 < len(text.encode("utf-8")) <= MAX_VALUE and text == text.strip()
            and all(ch.isprintable() for ch in text))


def read_secret_file(path):
    """The first line of a root-only file, as a Secret.

    Refused unless it is a regular file owned by root (or by whoever runs the agent) with no
    permission for group or others: a password that any local user can read is no secret, and
    taking it anyway would make the file look fine to whoever set it up."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise CredentialFileError("cannot open password file %s: %s"
                                  % (path, exc.strerror)) from None
    try:
        _usable(path, os.fstat(fd))
        data = os.read(fd, 4 * MAX_VALUE)
    except OSError as exc:
        raise CredentialFileError("cannot read password file %s: %s"
                                  % (path, exc.strerror)) from None
    finally:
        os.close(fd)
    line = data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace")
    if not line:
        raise CredentialFileError("password file %s is empty (the password is its first line)"
                                  % path)
    secret = Secret(line)
    if not is_chap_value(line):
        raise CredentialFileError("the password in %s must be 1 to %d bytes without control "
                                  "characters or white space at either end" % (path, MAX_VALUE))
    return secret


def _usable(path, info):
    if not stat.S_ISREG(info.st_mode):
        raise CredentialFileError("password file %s is not a regular file" % path)
    if info.st_uid not in (0, os.geteuid()):
        raise CredentialFileError("password file %s is owned by uid %d: chown root %s"
                                  % (path, info.st_uid, path))
    if info.st_mode & 0o077:
        raise CredentialFileError(
            "password file %s can be read or changed by others (mode %04o): chmod 600 %s"
            % (path, stat.S_IMODE(info.st_mode), path))


class Chap:
    """The CHAP settings of one session: `username`/`password` prove this initiator to the
    target; `username_in`/`password_in` (mutual CHAP) are what the target must answer with."""

    def __init__(self, username=None, password=None, username_in=None, password_in=None):
        self.username, self.password = username, password
        self.username_in, self.password_in = username_in, password_in

    @property
    def enabled(self):
        return bool(self.username)

    @property
    def mutual(self):
        return bool(self.username_in)

    def settings(self):
        """(key, value) lines for the record (CHAP is enabled: username is set)."""
        lines = [(PREFIX + "authmethod", "CHAP"), (PREFIX + "username", self.username),
                 (PREFIX + "password", reveal(self.password))]
        if self.mutual:
            lines += [(PREFIX + "username_in", self.username_in),
                      (PREFIX + "password_in", reveal(self.password_in))]
        return lines


def record_files(target, address, port, nodes_dir=NODES_DIR):
    """Every node record file of target at address:port: the old-style file, or the interface
    files of each <address>,<port>,<tpgt> directory (iscsiadm logs in through all of them)."""
    base = os.path.join(nodes_dir, target)
    stem = "%s,%s" % (address.strip("[]"), port)
    try:
        names = sorted(os.listdir(base))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise NodeRecordError("cannot read %s: %s" % (base, exc.strerror)) from None
    found = []
    for name in names:
        path = os.path.join(base, name)
        if name == stem and os.path.isfile(path):
            found.append(path)
        elif name.startswith(stem + ",") and os.path.isdir(path):
            found.extend(os.path.join(path, f) for f in sorted(os.listdir(path))
                         if os.path.isfile(os.path.join(path, f)))
    return found


def rewritten(text, settings):
    """The record text with this module's keys replaced by `settings` (before END RECORD)."""
    kept = [line for line in text.splitlines()
            if line.split("=", 1)[0].strip() not in AUTH_KEYS]
    new = ["%s = %s" % item for item in settings]
    at = next((i for i, line in enumerate(kept) if line.strip() == END), len(kept))
    return "\n".join(kept[:at] + new + kept[at:]) + "\n"


def _auth_lines(text):
    """(key, value) of the lines this module owns, as the record holds them."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return [(k.strip(), v.strip()) for k, v in pairs if k.strip() in AUTH_KEYS]


def write_record(path, settings, scratch):
    """Put `settings` into one record file, atomically, mode 0600; False if it already held
    them.  The temporary file is made 0600 before anything is written to it, in `scratch`
    (the target's directory, same file system) under a name without a comma: iscsiadm reads
    every file beside a record as another interface's record, but skips target-directory
    entries without a comma, so a file left by a killed agent cannot become a login path."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            old = handle.read()
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError as exc:
        raise NodeRecordError("cannot read node record %s: %s" % (path, exc.strerror)) from None
    if sorted(_auth_lines(old)) == sorted(settings) and mode == 0o600:
        return False
    new = rewritten(old, settings)
    temporary = os.path.join(scratch, ".hasf-record-%d" % os.getpid())
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
            os.fchmod(fd, 0o600)
            handle.write(new)
            handle.flush()
            os.fsync(fd)
        os.replace(temporary, path)
    except OSError as exc:
        _unlink(temporary)
        raise NodeRecordError("cannot write node record %s: %s" % (path, exc.strerror)) from None
    return True


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


class DatabaseLock:
    """open-iscsi's lock on its record database (idbm_lock): hard-link `lock` to `lock.write`;
    whoever made the link holds it.  Bounded by LOCK_WAIT and by the operation's deadline."""

    def __init__(self, deadline, directory=LOCK_DIR):
        self.deadline = deadline
        self.lock = os.path.join(directory, "lock")
        self.write = os.path.join(directory, "lock.write")
        self.directory = directory

    def __enter__(self):
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            os.close(os.open(self.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        except OSError as exc:
            raise NodeRecordError("cannot make open-iscsi's lock %s: %s"
                                  % (self.lock, exc.strerror)) from None
        until = time.monotonic() + self.deadline.bound(LOCK_WAIT)
        while True:
            try:
                os.link(self.lock, self.write)
                return self
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise NodeRecordError("cannot take open-iscsi's lock %s: %s"
                                          % (self.write, exc.strerror)) from None
            if time.monotonic() >= until:
                raise NodeRecordError(
                    "open-iscsi's record database stays locked (%s exists): an iscsiadm is "
                    "still running, or one was killed and left it behind (then remove it)"
                    % self.write)
            time.sleep(0.01)

    def __exit__(self, *exc_info):
        _unlink(self.write)


def apply(chap, target, address, port, deadline, nodes_dir=NODES_DIR, lock_dir=LOCK_DIR):
    """Write `chap` into every record of target at address:port; the files changed.
    NodeRecordError when there is no record (discovery made none) or it cannot be written."""
    with DatabaseLock(deadline, lock_dir):
        files = record_files(target, address, port, nodes_dir)
        if not files:
            raise NodeRecordError("no node record for %s at %s:%s under %s"
                                  % (target, address, port, nodes_dir))
        scratch = os.path.join(nodes_dir, target)
        return [path for path in files if write_record(path, chap.settings(), scratch)]
