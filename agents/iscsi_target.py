"""ocf:hasf:iSCSITarget -- an iSCSI target in tgtd or LIO, the scenario's SAN export.

implementation=lio-t is agents/lio_target.py (configfs); what follows is tgt.

Anchor: heartbeat/iSCSITarget (implementation=tgt), with its parameter
names, so an existing configuration moves over unchanged.  Differences:

- The target is found by its exact IQN; `tid` is optional (unset: one
  derived from the IQN, the same on every node, because tgt writes the tid
  into the LUNs' VPD page 0x83; ClusterLabs' agent requires it), and a tid
  held by another target is reported, not overwritten.
- Starts are serialised per tgtd by a real lock, held only around each tgtadm
  sequence (never across stop's waits); a failed start removes what it
  created, so a half-configured target never serves initiators.
- Stop closes every session, removes the target and returns only once tgtd
  no longer lists it -- bounded by the stop timeout, never an endless loop.
- "Not running" only when tgtd says so or provably does not run; tgtd
  alive but not answering is an error, never a guess.
- CHAP (incoming_username/password) is refused with tgt: tgtadm takes the
  password on its command line, readable in /proc by every local user.  The
  refusal names implementation=lio-t, which sets CHAP through configfs.
"""

from hasf import ocf
from hasf.agents import iscsi_base as base
from hasf.addresses import is_ip_network, is_iscsi_name, split_portal

DEFAULT_PORTAL = "0.0.0.0:3260"
CHAP = ("incoming_username", "incoming_password", "incoming_password_file", "outgoing_username",
        "outgoing_password", "outgoing_password_file")


def _is_initiator_list(text):
    return all(word == "ALL" or is_iscsi_name(word) or is_ip_network(word)
               for word in text.split())


def _is_portal_list(text):
    portals = [split_portal(word) for word in text.split()]
    return all(p is not None and is_ip_network(p[0]) for p in portals)


def _serves(listening, portal):
    """Whether tgtd's listening portals cover `portal` (exactly, or by a wildcard)."""
    host, port = split_portal(portal)
    for entry in listening:
        theirs = split_portal(entry)
        if theirs and theirs[1] == port and theirs[0] in (host, "0.0.0.0", "::"):
            return True
    return False


class ISCSITarget(base.TgtResource):
    name, version = "iSCSITarget", "1.0"
    shortdesc = "iSCSI target (tgt or LIO)"
    longdesc = (
        "Exports an iSCSI target from tgtd or LIO: the SAN of the scenario, usually grouped with its "
        "iSCSILogicalUnit resources and pinned to the node that owns the backing storage. "
        "Parameter names follow ocf:heartbeat:iSCSITarget. The target is identified by its "
        "exact IQN; stop closes initiator sessions and waits until the target is gone.")
    identity_fields = ("iqn",)
    refused = ocf.Refusals("hasf.clusterlabs", "ISCSI_TARGET")  # ClusterLabs' not taken
    parameters = (
        base.implementation_parameter(),
        ocf.Parameter("iqn", ocf.Checked(is_iscsi_name, "an iSCSI name: iqn.YYYY-MM.reversed."
                                         "domain[:id], eui.<16 hex> or naa.<16|32 hex>"),
                      required=True, unique=True, shortdesc="iSCSI target IQN",
                      longdesc="The target's iSCSI Qualified Name, conventionally "
                               "iqn.yyyy-mm.<reversed domain name>[:identifier]."),
        ocf.Parameter("tid", ocf.Integer(minimum=1), unique=True, shortdesc="tgt target ID",
                      longdesc="The tgt target ID. Optional: if unset, start takes one derived "
                               "from the IQN (1 to 1048575, the same on every node: tgt writes "
                               "the tid into the LUNs' VPD page 0x83, so the disk initiators "
                               "see stays the same after a failover); if another target holds "
                               "that one, the lowest free one, with a warning. A configured "
                               "tid used by another target is an error."),
        ocf.Parameter("portals", ocf.Checked(_is_portal_list, "space-separated address:port"),
                      default=DEFAULT_PORTAL, shortdesc="iSCSI portal addresses",
                      longdesc="Where initiators reach the target. tgt listens on its portals "
                               "for all targets (tgtd --iscsi portal=...); start checks that tgtd "
                               "serves each one and logs a warning if it does not."),
        ocf.Parameter("allowed_initiators", ocf.Checked(_is_initiator_list,
                                                        "space-separated initiator IQNs, "
                                                        "addresses or CIDRs, or ALL"),
                      default="", shortdesc="Initiators allowed to connect",
                      longdesc="Space-separated initiator names (iqn./eui./naa.), IP "
                               "addresses or CIDR ranges. Empty: any initiator (tgt's ALL)."),
        ocf.Parameter("incoming_username", unique=True, shortdesc="Incoming CHAP user",
                      longdesc="lio-t: the CHAP user initiators must log in as (CHAP is then "
                               "enforced). Not supported with tgt, whose tgtadm would put the "
                               "password on its command line; setting it fails validation."),
        ocf.Parameter("incoming_password", secret=True, shortdesc="Incoming CHAP password",
                      longdesc="lio-t: the CHAP secret of incoming_username, written to "
                               "configfs (mode 0600), never to a command line."),
        ocf.Parameter("incoming_password_file", ocf.Path(), shortdesc="File with the incoming "
                      "CHAP password", longdesc="lio-t: instead of incoming_password, a file "
                      "(first line) readable by root only, so the secret is not in the CIB."),
        ocf.Parameter("outgoing_username", shortdesc="Mutual CHAP user (target)",
                      longdesc="lio-t: the name the target answers mutual CHAP with "
                               "(initiators authenticate the target); needs incoming CHAP."),
        ocf.Parameter("outgoing_password", secret=True, shortdesc="Mutual CHAP password",
                      longdesc="lio-t: the secret of outgoing_username."),
        ocf.Parameter("outgoing_password_file", ocf.Path(), shortdesc="File with the mutual "
                      "CHAP password", longdesc="lio-t: instead of outgoing_password, a file "
                      "(first line) readable by root only."),
        base.additional_parameters_parameter("target"),
        base.control_port_parameter(),
    )
    actions = (ocf.Action("start", 20), ocf.Action("stop", 30),
               ocf.Action("monitor", 10, interval=10, depth=0), ocf.Action("validate-all", 10))

    def validate(self):
        if self.lio:
            self.refuse_given(("tgt_control_port",), "a tgt setting; LIO has no daemon")
            super().validate()
            return self._lio().validate()
        if any(getattr(self.params, n) for n in CHAP):
            raise ocf.NotConfigured(
                "CHAP (incoming_username/incoming_password) is not supported with "
                "implementation=tgt: tgtadm takes the password on its command line, visible "
                "to every local user in /proc; use implementation=lio-t (CHAP set through "
                "configfs) or restrict logins with allowed_initiators")
        super().validate()

    def _lio(self):
        from hasf.agents.lio_target import LioTarget

        return LioTarget(self)

    # --- actions ------------------------------------------------------------------------
    def state_of(self, iqn):
        if self.lio:
            return self._lio().state_of(iqn)
        target = self.targets().get(iqn)
        if target is None:
            return ocf.NOT_RUNNING
        if target.state and target.state != "ready":
            raise ocf.GenericError("target %s is %s in tgtd, not ready" % (target.iqn,
                                                                            target.state))
        if self.params.tid is not None and target.tid != self.params.tid:
            self.log.warning("target %s runs as tid %d, not the configured tid %d"
                             % (target.iqn, target.tid, self.params.tid))
        return ocf.SUCCESS

    def start(self):
        if self.lio:
            return self._lio().start()
        iqn = self.params.iqn
        with self.tgt_lock():
            targets = self.targets()
            if iqn in targets:
                self.log.info("target %s already exists (tid %d)" % (iqn, targets[iqn].tid))
                self.remember(iqn)
                return None
            tid = self._free_tid(targets)
            tgt = self.tgt
            tgt.new_target(tid, iqn)
            self.remember(iqn)
            try:
                for name, value in base.name_value_pairs(self.params.additional_parameters):
                    tgt.update_target(tid, name, value)
                for initiator in self.params.allowed_initiators.split() or ["ALL"]:
                    tgt.bind_initiator(tid, initiator)
            except ocf.OCFError as exc:
                self._undo(tid, exc)
                raise
        if self.params.given("portals"):
            self._check_portals()
        self.log.info("target %s created as tid %d" % (iqn, tid))
        return None

    def release(self, iqn):
        """Rounds of removal until the target is gone, the lock held only during a round:
        between rounds (an initiator's stuck I/O, a session that will not close) every
        other target and LU on this tgtd must be able to start and stop."""
        if self.lio:
            return self._lio().release(iqn)
        if not self.deadline.wait_for(lambda: self._locked(self._remove, iqn), 0.2, 1.0):
            raise ocf.GenericError("target %s is still in tgtd after %.0fs of stop"
                                   % (iqn, self.deadline.seconds))

    # --- helpers ------------------------------------------------------------------------
    def _free_tid(self, targets):
        """The configured tid; else the one derived from the IQN (the same on every node,
        so page 0x83 survives a failover); else, when another target holds that, the
        lowest free one, with a warning that says what differs and how to pin it."""
        used = {t.tid: t.iqn for t in targets.values()}
        tid = self.params.tid
        if tid is not None:
            if tid in used:
                raise ocf.GenericError("tid %d is already used by target %s; choose another "
                                       "tid or leave it unset" % (tid, used[tid]))
            return tid
        from hasf.agents.scsi_identity import default_tid

        tid = default_tid(self.params.iqn)
        if tid not in used:
            return tid
        free = min(set(range(1, len(used) + 2)) - set(used))
        self.log.warning("tid %d (derived from the IQN, the same on every node) is used by "
                         "target %s here: taking tid %d, so this node's LUNs show another "
                         "NAA-local designator in VPD page 0x83 than other nodes'; set the "
                         "tid parameter to one that is free everywhere" % (tid, used[tid], free))
        return free

    def _remove(self, iqn):
        """One round of stop: True once the target is gone.

        Initiators reconnect as soon as a connection is closed, and tgt
        refuses to delete a target with sessions (even with --force), so
        logins are refused first (ACLs unbound), then sessions closed."""
        target = self.targets().get(iqn)
        if target is None:
            return True
        tgt = self.tgt
        for initiator in target.acls:
            self._try(tgt.unbind_initiator, target.tid, initiator)
        for refusal in tgt.close_sessions(target):
            self.log.warning("%s (will retry)" % refusal)
        self._try(tgt.delete_target, target.tid)
        return self.targets().get(iqn) is None

    def _try(self, change, *args):
        from hasf.agents.tgt import TgtRefused

        try:
            change(*args)
        except TgtRefused as exc:
            self.log.warning("%s (will retry)" % exc.message)

    def _undo(self, tid, exc):
        self.log.error("start failed (%s); removing the half-made target tid %d"
                       % (exc.message, tid))
        try:
            self.tgt.delete_target(tid)
            self.forget()
        except ocf.OCFError as undo:
            self.log.error("could not remove tid %d: %s" % (tid, undo.message))

    def _check_portals(self):
        try:
            listening = self.tgt.portals()
        except ocf.OCFError as exc:
            self.log.warning("could not list tgtd's portals: %s" % exc.message)
            return
        for portal in self.params.portals.split():
            if not _serves(listening, portal):
                self.log.warning("tgtd does not listen on %s (it listens on %s): start tgtd "
                                 "with --iscsi portal=%s" % (portal, ", ".join(listening) or
                                                             "nothing", portal))


main = ocf.main_for(ISCSITarget)
