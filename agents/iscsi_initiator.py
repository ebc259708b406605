"""ocf:hasf:iscsi -- an open-iscsi session to one target through one portal (the initiator).

Anchor: heartbeat/iscsi, same parameter names.  Differences:

- monitor reads the kernel's session from sysfs (no iscsiadm, no iscsid
  round trip) and judges the *session* state, not the connection's (#168);
- start waits -- within its timeout, never forever -- until the session is
  logged in and its LUNs are block devices, then (udev=true) for udev;
- discovery_type=static creates the node record from portal + target
  without a discovery, for targets behind NAT or that announce unreachable
  portals;
- stop refuses to log out while a disk of the session is mounted -- in any
  mount namespace of the node -- or held open through device-mapper:
  logging out under a mounted filesystem throws away its writes.  Stop the
  Filesystem first (order constraints do that).  A device-mapper map that
  nobody has open (a multipath map left idle) does not block the logout.
- the portal must be an IP address: sysfs shows sessions by address, so a
  host name could never be matched (the start would log in and then time
  out, the stop and probes would not see the session).
- CHAP, one-way and mutual (hasf additions: heartbeat/iscsi has none).  The
  parameters are named after open-iscsi's own record keys,
  node.session.auth.username / password / username_in / password_in, the
  names administrators know from iscsid.conf and `iscsiadm -m node -o show`;
  each password also has a *_file form (a root-only file) so that it need not
  sit in the CIB, which every CIB reader can see.  start writes them into the
  node record file between discovery and login (iscsi_chap: never in argv).
  Unset, the record keeps iscsid.conf's settings, as with heartbeat/iscsi.
"""

import os

from hasf import ocf
from hasf.agents import iscsi_chap, iscsi_sessions
from hasf.addresses import format_portal, is_ip_network, is_ipv4, is_iscsi_name, split_portal
from hasf.kernel import CannotRead
from hasf.kernel.attrs import entries, read_attr

DEFAULT_PORT = 3260


def _is_portal(text):
    portal = split_portal(text, DEFAULT_PORT)
    if portal is None:
        return False
    host = portal[0]
    return is_ipv4(host) or (":" in host and "/" not in host and is_ip_network(host))


def _chap_parameters():
    """username/password (this initiator to the target) and username_in/password_in (the
    target to this initiator, mutual CHAP), each password also as a root-only *_file."""
    value = ocf.Checked(iscsi_chap.is_chap_value, "1 to 255 bytes, no control characters, "
                                                  "no white space at either end")
    auth = "node.session.auth."
    made = []
    for suffix, who, what, unset in (
            ("", "This initiator's", "the target checks",
             "the node record keeps what iscsid.conf says"),
            ("_in", "The target's", "this initiator checks (mutual CHAP; needs "
                                    "username/password too)", "one-way CHAP")):
        made += [
            ocf.Parameter("username" + suffix, value, shortdesc="%s CHAP user name" % who,
                          longdesc="%s CHAP user name, which %s (open-iscsi's %susername%s). "
                                   "Unset: %s." % (who, what, auth, suffix, unset)),
            ocf.Parameter("password" + suffix, value, secret=True,
                          shortdesc="%s CHAP password" % who,
                          longdesc="%s CHAP secret (%spassword%s). Written only into the "
                                   "node record file (mode 0600), never on a command line; "
                                   "CIB readers can see it: password%s_file keeps it out of "
                                   "the CIB." % (who, auth, suffix, suffix)),
            ocf.Parameter("password%s_file" % suffix, ocf.Path(),
                          shortdesc="File with %s CHAP password" % who.lower(),
                          longdesc="Instead of password%s: a file whose first line is the "
                                   "secret, owned by root and readable by nobody else (mode "
                                   "0600); a file others can read is refused." % suffix),
        ]
    return tuple(made)


def normal_portal(text):
    """address:port with the default port added (what sysfs shows)."""
    return format_portal(*split_portal(text, DEFAULT_PORT))


class ISCSIInitiator(ocf.ResourceAgent):
    name, version = "iscsi", "1.0"
    shortdesc = "iSCSI initiator session (open-iscsi)"
    longdesc = (
        "Logs this node in to an iSCSI target through one portal, so its LUNs appear as block "
        "devices; usually a clone, ordered after the target and before the filesystems on its "
        "LUNs. Parameter names follow ocf:heartbeat:iscsi.")
    refused = ocf.Refusals("hasf.clusterlabs", "ISCSI_INITIATOR")  # ClusterLabs' not taken
    parameters = (
        ocf.Parameter("portal", ocf.Checked(_is_portal, "an IP address[:port] (not a host "
                                                        "name: the kernel shows sessions by "
                                                        "address)"),
                      required=True, shortdesc="Portal address",
                      longdesc="The target's portal, IPv4 or [IPv6] address[:port] (port 3260 "
                               "if omitted). Not a host name: sessions are matched by the "
                               "address the kernel shows."),
        ocf.Parameter("target", ocf.Checked(is_iscsi_name, "an iSCSI name (iqn., eui., naa.)"),
                      required=True, unique=True, shortdesc="Target IQN",
                      longdesc="The IQN of the target to log in to."),
        ocf.Parameter("discovery_type", ocf.Choice("sendtargets", "static"),
                      default="sendtargets", shortdesc="Discovery",
                      longdesc="sendtargets: ask the portal which targets it offers (the node "
                               "record is made by discovery); static: make the node record "
                               "from portal and target directly."),
        ocf.Parameter("iscsiadm", ocf.Path(), default="/usr/sbin/iscsiadm",
                      shortdesc="iscsiadm", longdesc="The iscsiadm program."),
        ocf.Parameter("udev", ocf.Boolean(), default=True, shortdesc="Wait for udev",
                      longdesc="After login, wait (within the start timeout) for udev to make "
                               "the /dev/disk/by-path links filesystems are usually named by."),
        ocf.Parameter("try_recovery", ocf.Boolean(), default=False,
                      shortdesc="Ride out session recovery",
                      longdesc="A session in recovery (FAILED) fails the monitor, unless this "
                               "is true: then the monitor waits within its timeout for the "
                               "kernel to log in again."),
    ) + _chap_parameters()
    actions = (ocf.Action("start", 120), ocf.Action("stop", 120),
               ocf.Action("monitor", 30, interval=120, depth=0), ocf.Action("reload-agent", 30),
               ocf.Action("validate-all", 10))
    #: read only by the operation that uses them (monitor; start; every call of iscsiadm;
    #: the CHAP settings by the next login): a change needs no logout -- which would take
    #: every filesystem on the LUNs down
    reloadable = ("try_recovery", "udev", "iscsiadm", "username", "password", "password_file",
                  "username_in", "password_in", "password_in_file")

    @property
    def portal(self):
        return normal_portal(self.params.portal)

    def validate(self):
        if not os.access(self.params.iscsiadm, os.X_OK):
            raise ocf.NotInstalled("%s is not installed (package open-iscsi)"
                                   % self.params.iscsiadm)
        self._chap()

    def _chap(self):
        """The configured CHAP settings, password files read; NotConfigured for settings that
        are wrong everywhere, InvalidArgs for a password file unusable on this node."""
        p = self.params
        for suffix in ("", "_in"):
            if getattr(p, "password" + suffix) and getattr(p, "password%s_file" % suffix):
                raise ocf.NotConfigured("set password%s or password%s_file, not both"
                                        % (suffix, suffix))
            has_user = bool(getattr(p, "username" + suffix))
            has_secret = bool(getattr(p, "password" + suffix)
                              or getattr(p, "password%s_file" % suffix))
            if has_user != has_secret:
                raise ocf.NotConfigured("CHAP needs both username%s and password%s (or "
                                        "password%s_file)" % (suffix, suffix, suffix))
        if p.username_in and not p.username:
            raise ocf.NotConfigured("mutual CHAP (username_in) needs username and password "
                                    "too: the target only answers an initiator that "
                                    "authenticated itself")
        try:
            return iscsi_chap.Chap(p.username, self._secret(""), p.username_in,
                                   self._secret("_in"))
        except iscsi_chap.CredentialFileError as exc:
            raise ocf.InvalidArgs(exc.message) from None

    def _secret(self, suffix):
        path = getattr(self.params, "password%s_file" % suffix)
        if path:
            return iscsi_chap.read_secret_file(path)
        return getattr(self.params, "password" + suffix)

    # --- monitor ------------------------------------------------------------------------
    def _sessions_or_tell(self, read):
        try:
            return read()
        except CannotRead as exc:
            raise ocf.CannotTell("iSCSI sessions: %s" % exc.message) from None

    def _found(self):
        """This resource's sessions: to its target through its portal."""
        return self._sessions_or_tell(lambda: iscsi_sessions.find(self.params.target,
                                                                  self.portal))

    def _unmatched(self):
        """Sessions that might be this resource's when its parameters are unusable: to its
        target through any portal, or -- without a usable target -- every session."""
        if self.params.target is not None:
            return self._sessions_or_tell(lambda: [
                s for s in iscsi_sessions.sessions() if s.target == self.params.target])
        return self._sessions_or_tell(iscsi_sessions.sessions)

    def monitor(self):
        if self.params.target is None or self.params.portal is None:
            if self.invocation.is_probe and not self._unmatched():
                return ocf.NOT_RUNNING  # no session that could be this one on this node
            raise ocf.NotConfigured("; ".join(self.problems))
        found = self._found()
        if not found:
            return ocf.NOT_RUNNING
        if any(s.logged_in for s in found):
            return ocf.SUCCESS
        if self.params.try_recovery and not self.invocation.is_probe:
            if self.deadline.wait_for(self._logged_in, 1.0):
                return ocf.SUCCESS
        raise ocf.GenericError("session to %s at %s is %s (in recovery: the target or the "
                               "network is unreachable)" % (self.params.target, self.portal,
                                                            found[0].state))

    def _logged_in(self):
        found = self._found()
        return found if any(s.logged_in for s in found) else None

    # --- reload-agent -------------------------------------------------------------------
    def reload_agent(self):
        """Only `reloadable` parameters changed: nothing to log out or in.  The session must
        still be logged in -- a reload that succeeded without one would hide that."""
        if not self._logged_in():
            raise ocf.GenericError("no logged-in session to %s at %s: nothing to reload"
                                   % (self.params.target, self.portal))
        self.log.info("reloaded: %s" % " ".join(
            "%s=%s" % (name, getattr(self.params, name)) for name in self.reloadable))
        return None

    # --- start --------------------------------------------------------------------------
    def start(self):
        if self._logged_in():
            return None
        self._node_record()
        chap = self._write_chap()
        result = self._iscsiadm("-m", "node", "-T", self.params.target, "-p", self.portal,
                                "--login")
        if not result.ok and result.rc != 15:  # 15: session already exists
            self._login_failed(result, chap)
        found = self.deadline.wait_for(self._ready, 0.2, 1.0)
        if not found:
            raise ocf.GenericError("no logged-in session with block devices to %s at %s "
                                   "within the start timeout" % (self.params.target,
                                                                 self.portal))
        if self.params.udev:
            self._settle()
        self.log.info("logged in to %s at %s: %s" % (self.params.target, self.portal,
                                                    ", ".join(found[0].disks)))
        return None

    def _write_chap(self):
        """CHAP into the node record(s) of this target and portal, after discovery (or -o new)
        made them afresh and before the login reads them.  Without CHAP parameters the records
        stay as open-iscsi made them from iscsid.conf (iscsi_chap says why that also drops
        what an earlier start wrote)."""
        chap = self._chap()
        if not chap.enabled:
            return chap
        address, port = split_portal(self.params.portal, DEFAULT_PORT)
        try:
            changed = iscsi_chap.apply(chap, self.params.target, address, port, self.deadline)
        except iscsi_chap.NodeRecordError as exc:
            raise ocf.GenericError(exc.message) from None
        if changed:
            self.log.info("wrote %sCHAP to %s" % ("mutual " if chap.mutual else "",
                                                 ", ".join(changed)))
        return chap

    def _login_failed(self, result, chap):
        """Why the login failed, with the code Pacemaker should act on: an authentication
        failure (iscsiadm 24; 19 when mutual CHAP fails on the target's answer) is ERR_ARGS,
        this node's credentials or ACL entry do not work -- retrying here cannot help, and
        sessions of other nodes are not touched (ERR_CONFIGURED would stop them all)."""
        where = "%s at %s" % (self.params.target, self.portal)
        if result.rc == 24 and not chap.enabled:
            raise ocf.InvalidArgs("login to %s was refused as unauthorized: the target "
                                  "requires CHAP (set username and password) or does not "
                                  "admit this initiator" % where)
        if result.rc == 24:
            raise ocf.InvalidArgs("CHAP login to %s as %r was refused: the target does not "
                                  "accept this user name and password, or does not admit "
                                  "this initiator" % (where, chap.username))
        if result.rc == 19 and chap.mutual:
            raise ocf.InvalidArgs("mutual CHAP login to %s failed (iscsiadm 19, non-retryable)"
                                  ": the target did not prove itself as %r with password_in, "
                                  "or rejected the login for another reason"
                                  % (where, chap.username_in))
        raise ocf.GenericError("login to %s failed: %s" % (where, result.summary()))

    def _ready(self):
        found = self._logged_in()
        return found if found and found[0].disks else None

    def _node_record(self):
        p = self.params
        if p.discovery_type == "static":
            result = self._iscsiadm("-m", "node", "-T", p.target, "-p", self.portal, "-o", "new")
            if not result.ok and result.rc != 15:  # 15: the record exists
                raise ocf.GenericError("creating the node record failed: %s" % result.summary())
            return
        result = self._iscsiadm("-m", "discovery", "-t", "sendtargets", "-p", self.portal)
        if result.rc == 24:  # hasf sends no discovery CHAP (iscsi_chap says why)
            raise ocf.InvalidArgs("discovery at %s was refused as unauthorized: the portal "
                                  "requires CHAP for discovery, which this agent does not "
                                  "send; set discovery_type=static" % self.portal)
        if not result.ok:
            raise ocf.GenericError("discovery at %s failed: %s" % (self.portal,
                                                                   result.summary()))
        offered = [line.split() for line in result.stdout.splitlines() if line.strip()]
        portals = [words[0].split(",")[0] for words in offered
                   if len(words) > 1 and words[1] == p.target]
        if self.portal not in portals:
            raise ocf.GenericError(
                "discovery at %s offers %s at %s, not at %s; set discovery_type=static" % (
                    self.portal, p.target, ", ".join(portals) or "no portal", self.portal)
                if portals else "discovery at %s does not offer %s" % (self.portal, p.target))

    def _settle(self):
        from hasf.runner import CommandError, run

        try:
            run(["udevadm", "settle", "--timeout=%d" % max(1, int(self.deadline.remaining()
                                                                   - 1))],
                deadline=self.deadline, log=self.log)
        except CommandError as exc:  # no udev (a container, a minimal guest): links may lag
            self.log.warning("udevadm settle: %s" % exc.message)

    # --- stop ---------------------------------------------------------------------------
    def stop(self):
        if self.params.target is None or self.params.portal is None:
            if not self._unmatched():
                return None
            raise ocf.NotConfigured("cannot tell which session to end: %s"
                                    % "; ".join(self.problems))
        found = self._found()
        if not found:
            return None
        try:
            busy = _in_use([d for session in found for d in session.disks], self.deadline,
                           self.log)
        except CannotRead as exc:
            raise ocf.CannotTell("cannot tell whether the disks of %s are in use: %s"
                                 % (self.params.target, exc.message)) from None
        if busy:
            raise ocf.GenericError("not logging out of %s: %s (stop what uses it first)"
                                   % (self.params.target, "; ".join(busy)))
        result = self._iscsiadm("-m", "node", "-T", self.params.target, "-p", self.portal,
                                "--logout")
        if not result.ok and result.rc != 21:  # 21: no session (gone meanwhile)
            raise ocf.GenericError("logout from %s failed: %s" % (self.params.target,
                                                                 result.summary()))
        if not self.deadline.wait_for(lambda: not self._found(), 0.2, 1.0):
            raise ocf.GenericError("the session to %s is still there after logout"
                                   % self.params.target)
        return None

    def _iscsiadm(self, *args):
        from hasf.runner import CommandNotFound, run

        try:
            return run([self.params.iscsiadm] + list(args), timeout=60, deadline=self.deadline,
                       log=self.log)
        except CommandNotFound:
            raise ocf.NotInstalled("%s is not installed (package open-iscsi)"
                                   % self.params.iscsiadm) from None


def _in_use(disks, deadline, log, sysfs=iscsi_sessions.SYSFS):
    """What uses these disks or their partitions: a mount in any mount namespace, or a
    holder (device-mapper, md) that is itself open.  CannotRead when it cannot tell."""
    from hasf.kernel import namespaces

    tables = namespaces.tables()
    uses = []
    for disk in disks:
        base = os.path.join(sysfs, "block", disk)
        names = [disk] + [p for p in entries(base) if p.startswith(disk)]
        for name in names:
            node = os.path.join(base, name) if name != disk else base
            number = _number(read_attr(os.path.join(node, "dev")))
            if number is not None:
                uses.extend("/dev/%s is mounted on %r" % (name, seen)
                            for seen in namespaces.sightings(number, read=tables))
            for holder in entries(os.path.join(node, "holders")):
                use = _holder_use(name, holder, tables, deadline, log, sysfs)
                if use:
                    uses.append(use)
    return uses


def _number(text):
    major, sep, minor = (text or "").partition(":")
    return (int(major), int(minor)) if sep and major.isdigit() and minor.isdigit() else None


def _holder_use(name, holder, tables, deadline, log, sysfs):
    """Why `holder` (dm-N, mdN) of /dev/name blocks a logout, or None when it is an
    unused device-mapper map (open count 0: an idle multipath map, for instance)."""
    from hasf.kernel import namespaces

    if not holder.startswith("dm-"):
        return "/dev/%s is held by %s" % (name, holder)
    number = _number(read_attr(os.path.join(sysfs, "block", holder, "dev")))
    if number is None:
        return None  # the map went away meanwhile
    if namespaces.sightings(number, read=tables) or \
            entries(os.path.join(sysfs, "block", holder, "holders")):
        return "/dev/%s is held by %s, which is mounted or stacked on" % (name, holder)
    opened = _dm_open_count(number, deadline, log)
    if opened is None:
        return "/dev/%s is held by %s, whose open count cannot be read" % (name, holder)
    if opened:
        return "/dev/%s is held by %s (open count %d)" % (name, holder, opened)
    log.info("/dev/%s is held by %s, which nobody has open: not in the way" % (name, holder))
    return None


def _dm_open_count(number, deadline, log):
    """The map's open count (dmsetup's view of the kernel's), or None if unknown."""
    from hasf.runner import CommandError, run

    try:
        result = run(["dmsetup", "info", "-c", "--noheadings", "-o", "open", "-j",
                      str(number[0]), "-m", str(number[1])], timeout=10, deadline=deadline,
                     log=log)
    except CommandError as exc:
        log.warning("dmsetup info: %s" % exc.message)
        return None
    text = result.stdout.strip()
    return int(text) if result.ok and text.isdigit() else None


main = ocf.main_for(ISCSIInitiator)
