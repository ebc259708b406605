"""tgt (the Linux SCSI target framework, user space): what hasf's iSCSI agents ask of it.

tgtd keeps its whole configuration in memory and is managed through one
tool, tgtadm, talking to a unix socket per control port
(/run/tgtd/socket.<port>).  This module is the only place that runs tgtadm
and reads its `--op show` report, so both iSCSI agents see one model of the
daemon: targets by exact IQN (never a regular expression that lets
"…:san" match "…:san2", as ClusterLabs' grep does), with their LUNs,
sessions and ACLs.

"Is tgtd running?" is answered from the lock tgtd holds on
/run/tgtd/socket.<port>.lock for its whole life: no lock holder means no
daemon and so, for certain, no target.  A tgtadm that fails or hangs while
the lock is held means "cannot tell", never "stopped".

The monitor reads the same report through tgtd's socket instead
(hasf.agents.tgt_socket, `targets(socket=True)`): no exec, and no import of
hasf.runner, which is why that import waits for the first tgtadm call.
"""

import fcntl
import os
import struct

from hasf.ocf.errors import CannotTell, GenericError, NotInstalled
from hasf.addresses import is_iscsi_name

SOCKET_DIR = "/run/tgtd"
NOT_INSTALLED = "tgtadm is not installed (package tgt / scsi-target-utils)"
#: each tgtadm call gets at most this long; tgtd answers in milliseconds
CALL_TIMEOUT = 10.0
#: struct flock on Linux x86_64/aarch64: l_type, l_whence, l_start, l_len, l_pid (+ padding)
FLOCK = "hhqqi4x"


class Target:
    """One target in tgtd's report: tid, IQN, state, LUNs, sessions, accounts, ACLs."""

    def __init__(self, tid, iqn):
        self.tid = tid
        self.iqn = iqn
        self.state = ""
        #: {lun number: backing store path ("None" for the controller LUN 0)}
        self.luns = {}
        #: {session id (I_T nexus): [connection ids]}
        self.sessions = {}
        self.accounts = []
        self.acls = []

    def __repr__(self):
        return "Target(%d, %r, luns=%r)" % (self.tid, self.iqn, self.luns)


def parse_targets(text):
    """`tgtadm --op show --mode target` output -> {iqn: Target}.

    The report is indented text; sections are recognised by their headings,
    so a field tgt adds in a later version is simply skipped."""
    targets, target, section, lun, session = {}, None, "", None, None
    for line in text.splitlines():
        stripped = line.strip()
        if line.startswith("Target ") and ":" in line:
            number, _, iqn = line[len("Target "):].partition(":")
            target = Target(int(number), iqn.strip())
            targets[target.iqn] = target
            section = ""
            continue
        if target is None or not stripped:
            continue
        if stripped.endswith("information:"):
            section = stripped[:-len(" information:")]
            continue
        key, _, value = stripped.partition(":")
        value = value.strip()
        if section == "System" and key == "State":
            target.state = value
        elif section == "LUN" and key == "LUN":
            lun = int(value)
            target.luns[lun] = None
        elif section == "LUN" and key == "Backing store path" and lun is not None:
            target.luns[lun] = value
        elif section == "I_T nexus" and key == "I_T nexus":
            session = int(value)
            target.sessions[session] = []
        elif section == "I_T nexus" and key == "Connection" and session is not None:
            target.sessions[session].append(int(value))
        elif section == "Account":
            target.accounts.append(stripped)
        elif section == "ACL":
            target.acls.append(stripped)
    return targets


def require_tgtadm():
    """NotInstalled unless tgtadm is on this node (start and validate-all check first)."""
    from hasf.runner import CommandNotFound, resolve

    try:
        resolve("tgtadm")
    except CommandNotFound:
        raise NotInstalled(NOT_INSTALLED) from None


def _lock_held(path):
    """Whether some process holds a POSIX lock on path (F_GETLK: we take nothing)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        # struct flock on Linux: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t
        query = struct.pack(FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
        return struct.unpack(FLOCK, answer)[0] != fcntl.F_UNLCK
    finally:
        os.close(fd)


class Tgt:
    """tgtd behind one control port, driven through tgtadm within a deadline."""

    def __init__(self, control_port=0, deadline=None, log=None, socket_dir=SOCKET_DIR):
        self.control_port = control_port
        self.deadline = deadline
        self.log = log
        self.socket_dir = socket_dir
        self.lock_path = os.path.join(socket_dir, "socket.%d.lock" % control_port)

    # --- the daemon ---------------------------------------------------------------------
    def daemon_running(self):
        return _lock_held(self.lock_path)

    def _tgtadm(self, *args):
        from hasf.runner import CommandNotFound, CommandTimeout, run

        argv = ["tgtadm", "-C", str(self.control_port), "--lld", "iscsi"] + list(args)
        try:
            return run(argv, timeout=CALL_TIMEOUT, deadline=self.deadline, log=self.log)
        except CommandNotFound:
            raise NotInstalled(NOT_INSTALLED) from None
        except CommandTimeout as exc:
            raise CannotTell("tgtd did not answer: %s" % exc.message) from None

    def _unreachable(self, result):
        if self.daemon_running():
            return CannotTell("tgtd (control port %d) is running but does not answer: %s"
                              % (self.control_port, result.summary()))
        return TgtdNotRunning("tgtd is not running (control port %d); start the tgt service"
                              % self.control_port)

    def change(self, *args):
        """Run one tgtadm change; a refusal raises GenericError with tgtadm's words."""
        result = self._tgtadm(*args)
        if result.ok:
            return
        if result.rc == 107 or "can't send the request" in result.stderr \
                or "failed to send request" in result.stderr:
            raise self._unreachable(result)
        raise TgtRefused(result.summary(), result.rc)

    # --- what is there ------------------------------------------------------------------
    def targets(self, socket=False):
        """{iqn: Target}; TgtdNotRunning when tgtd is provably not running.

        socket=True asks tgtd's management socket directly instead of running
        tgtadm (the same report, no exec): what the monitor does."""
        if socket:
            return parse_targets(self._show_through_socket())
        try:
            result = self._tgtadm("--op", "show", "--mode", "target")
        except NotInstalled as exc:
            if self.daemon_running():
                raise CannotTell("tgtd is running but %s" % exc.message) from None
            raise TgtdNotRunning(exc.message) from None
        if not result.ok:
            raise self._unreachable(result)
        return parse_targets(result.stdout)

    def _show_through_socket(self):
        from hasf.agents.tgt_socket import TgtdUnreachable, show_targets

        try:
            return show_targets(self.control_port, self.deadline, self.socket_dir)
        except TgtdUnreachable as exc:
            if self.daemon_running():  # starting or stopping: its lock is held
                raise CannotTell("tgtd (control port %d) is running but %s"
                                 % (self.control_port, exc.message)) from None
            raise TgtdNotRunning("tgtd is not running (control port %d): %s"
                                 % (self.control_port, exc.message)) from None

    def portals(self):
        """The addresses tgtd listens on, as "address:port" strings."""
        result = self._tgtadm("--op", "show", "--mode", "portal")
        if not result.ok:
            raise self._unreachable(result)
        return [line.split(":", 1)[1].strip().rsplit(",", 1)[0]
                for line in result.stdout.splitlines() if line.startswith("Portal:")]

    # --- targets ------------------------------------------------------------------------
    def new_target(self, tid, iqn):
        self.change("--op", "new", "--mode", "target", "--tid", str(tid), "--targetname", iqn)

    def delete_target(self, tid, force=True):
        args = ["--op", "delete", "--mode", "target", "--tid", str(tid)]
        self.change(*(args + (["--force"] if force else [])))

    def update_target(self, tid, name, value):
        self.change("--op", "update", "--mode", "target", "--tid", str(tid),
                    "--name", name, "--value", value)

    def bind_initiator(self, tid, initiator):
        """Allow an initiator: an IQN/EUI/NAA name, an address, a CIDR or ALL."""
        how = "--initiator-name" if is_iscsi_name(initiator) else "--initiator-address"
        self.change("--op", "bind", "--mode", "target", "--tid", str(tid), how, initiator)

    def unbind_initiator(self, tid, initiator):
        how = "--initiator-name" if is_iscsi_name(initiator) else "--initiator-address"
        self.change("--op", "unbind", "--mode", "target", "--tid", str(tid), how, initiator)

    def close_connection(self, tid, sid, cid):
        self.change("--op", "delete", "--mode", "connection", "--tid", str(tid),
                    "--sid", str(sid), "--cid", str(cid))

    def close_sessions(self, target):
        """Close every initiator connection of target; returns tgtadm's refusals.

        Initiators log in again at once (libiscsi and open-iscsi both do)
        unless the target's ACLs were removed first."""
        refusals = []
        for sid, cids in target.sessions.items():
            for cid in cids:
                try:
                    self.close_connection(target.tid, sid, cid)
                except TgtRefused as exc:
                    refusals.append(exc.message)
        return refusals

    # --- logical units ------------------------------------------------------------------
    def new_lu(self, tid, lun, path, options=()):
        self.change("--op", "new", "--mode", "logicalunit", "--tid", str(tid),
                    "--lun", str(lun), "--backing-store", path, *options)

    def update_lu(self, tid, lun, params):
        """params: [(name, value)] -- names and values are checked free of ',' and '='."""
        text = ",".join("%s=%s" % pair for pair in params)
        self.change("--op", "update", "--mode", "logicalunit", "--tid", str(tid),
                    "--lun", str(lun), "--params", text)

    def delete_lu(self, tid, lun):
        self.change("--op", "delete", "--mode", "logicalunit", "--tid", str(tid),
                    "--lun", str(lun))


class TgtdNotRunning(GenericError):
    """tgtd is provably not running: nothing it would serve exists."""


class TgtRefused(GenericError):
    """tgtadm ran and tgtd refused the change (tgtadm's message is the reason)."""

    def __init__(self, message, rc):
        super().__init__(message)
        self.rc = rc
