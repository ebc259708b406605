"""ocf:hasf:iSCSILogicalUnit -- one LUN of a tgt or LIO iSCSI target.

implementation=lio-t is agents/lio_lun.py (configfs); what follows is tgt.

Anchor: heartbeat/iSCSILogicalUnit (implementation=tgt), same parameter
names.  Differences: monitor checks *this* target's *this* LUN and its
backing store (ClusterLabs matches the path in any target's report, so
another target's LU counts as ours); start refuses a LUN number taken by a
different backing store instead of failing obscurely; a failed parameter
update removes the half-made LU; stop retries while tgtd reports the LU in
use, bounded by the stop timeout, and returns only once it is gone.

The SCSI identity (scsi_id, scsi_sn: VPD pages 0x83 and 0x80) defaults to
ClusterLabs' values derived from the resource instance name
(hasf.agents.scsi_identity), not to tgt's, which derives it from the target
id: a SAN failover to a node where the target got another tid keeps the
disk initiators know.
"""

import os

from hasf import ocf
from hasf.agents import iscsi_base as base
from hasf.addresses import is_iscsi_name

#: tgt's inquiry fields and their lengths (SPC: vendor 8, product 16, revision 4)
_INQUIRY = (("scsi_id", 24, "SCSI ID (page 0x83)"), ("scsi_sn", 36, "SCSI serial number"),
            ("vendor_id", 8, "SCSI vendor ID"), ("product_id", 16, "SCSI product ID"),
            ("product_rev", 4, "SCSI product revision"))
_BACKING_OPTIONS = (("tgt_bstype", "--bstype", "backing store type (rdwr, aio, ...)"),
                    ("tgt_bsoflags", "--bsoflags", "backing store open flags (direct, sync)"),
                    ("tgt_bsopts", "--bsopts", "backing store options"),
                    ("tgt_device_type", "--device-type", "device type (disk, cd, ...)"))


#: what the identity fields default to when unset (hasf.agents.scsi_identity)
_IDENTITY_DEFAULTS = {
    "scsi_id": "the resource instance name's first 16 characters",
    "scsi_sn": "the first 8 hex digits of the MD5 of the resource instance name",
}
_IDENTITY_NOTES = {
    "scsi_id": " tgt adds a locally-assigned NAA designator made of the tid and LUN; set the "
               "iSCSITarget's tid for every byte of page 0x83 to match too.",
    "scsi_sn": "",
}


def _field(name, length, what):
    if name in _IDENTITY_DEFAULTS:
        unset = ("If unset: %s, as ocf:heartbeat:iSCSILogicalUnit does -- the same on every "
                 "node, so initiators (multipath, /dev/disk/by-id) see the same disk after a "
                 "failover, whatever tid the target got there.%s"
                 % (_IDENTITY_DEFAULTS[name], _IDENTITY_NOTES[name]))
    else:
        unset = "tgt's default if unset."
    return ocf.Parameter(
        name, ocf.Checked(lambda t: len(t) <= length and base.is_tgt_value(t),
                          "at most %d characters, no whitespace, ',' or '='" % length),
        shortdesc=what, longdesc="The LU's %s. %s" % (what, unset))


def _backing_option(name, what):
    return ocf.Parameter(name, ocf.Checked(base.is_tgt_value, "no whitespace, ',' or '='"),
                         shortdesc="tgt " + what,
                         longdesc="Passed to tgtadm --op new --mode logicalunit as the " + what
                                  + "; tgt's default if unset.")


LIO_PARAMETERS = (
    ocf.Parameter("liot_bstype", ocf.Choice("block", "fileio"), default="block",
                  shortdesc="LIO backstore type",
                  longdesc="lio-t: block (iblock, a block device) or fileio (a file, or a block "
                           "device through the page cache; write-through)."),
    ocf.Parameter("allowed_initiators", ocf.Checked(
        lambda t: all(is_iscsi_name(w) for w in t.split()), "space-separated initiator names"),
        default="", shortdesc="Initiators this LUN is mapped to",
        longdesc="lio-t: the initiators (iqn./eui./naa.) that see this LUN; ACLs missing on "
                 "the target are made (and removed again on stop). Empty: the LUN is mapped "
                 "into every ACL of the target (targetcli's default). A target without "
                 "allowed_initiators of its own (demo mode) still shows every LUN to "
                 "initiators that have no ACL."),
) + tuple(ocf.Parameter(name, ocf.Integer(minimum=0, maximum=1), shortdesc="LIO " + what,
                        longdesc="lio-t: 1 enables %s (backstore attribute %s); unset: "
                                 "LIO's default." % (what, name))
          for name, what in (("emulate_tpu", "UNMAP (thin provisioning, TRIM/DISCARD)"),
                             ("emulate_3pc", "EXTENDED COPY (third-party copy)"),
                             ("emulate_caw", "COMPARE AND WRITE")))
LIO_ONLY = tuple(p.name for p in LIO_PARAMETERS)


class ISCSILogicalUnit(base.TgtResource):
    name, version = "iSCSILogicalUnit", "1.0"
    shortdesc = "iSCSI logical unit (tgt or LIO)"
    longdesc = (
        "Exports a block device or file as one LUN of an iSCSI target in tgtd or LIO. Order it after "
        "(and colocate it with) its iSCSITarget, usually in one group. Parameter names follow "
        "ocf:heartbeat:iSCSILogicalUnit.")
    identity_fields = ("target_iqn", "lun", "path")
    refused = ocf.Refusals("hasf.clusterlabs", "ISCSI_LOGICAL_UNIT")  # ClusterLabs' not taken
    parameters = (
        base.implementation_parameter(),
        ocf.Parameter("target_iqn", ocf.Checked(is_iscsi_name, "an iSCSI name (iqn., eui. "
                                                "or naa.)"),
                      required=True, shortdesc="Target IQN",
                      longdesc="The IQN of the target this LU belongs to (its iSCSITarget's iqn)."),
        ocf.Parameter("lun", ocf.Integer(minimum=0, maximum=16383), required=True,
                      shortdesc="Logical unit number",
                      longdesc="The LUN; tgt keeps LUN 0 for its controller (so 1 or more "
                               "there), LIO takes 0 too."),
        ocf.Parameter("path", ocf.Path(), required=True, shortdesc="Backing store",
                      longdesc="The block device or file that holds the LU's data."),
    ) + tuple(_field(*f) for f in _INQUIRY) + tuple(
        _backing_option(n, w) for n, _, w in _BACKING_OPTIONS) + (
        base.additional_parameters_parameter("logical unit"),
        base.control_port_parameter(),
    ) + LIO_PARAMETERS
    actions = (ocf.Action("start", 20), ocf.Action("stop", 30),
               ocf.Action("monitor", 10, interval=10, depth=0), ocf.Action("validate-all", 10))

    def validate(self):
        super().validate()
        if self.lio:
            self._lio().validate()
        else:
            self.refuse_given(LIO_ONLY, "LIO settings (implementation=lio-t), not tgt's")
            if self.params.lun == 0:
                raise ocf.NotConfigured("lun 0 is tgt's controller LUN; use 1 or more")
        if not os.path.exists(self.params.path):
            raise ocf.NotInstalled("backing store %s does not exist on this node"
                                   % self.params.path)

    def _lio(self):
        from hasf.agents.lio_lun import LioLogicalUnit

        return LioLogicalUnit(self)

    # --- actions ------------------------------------------------------------------------
    def state_of(self, iqn, lun, path):
        if self.lio:
            return self._lio().state_of(iqn, lun, path)
        return ocf.SUCCESS if self._find(iqn, lun, path) is not None else ocf.NOT_RUNNING

    def start(self):
        if self.lio:
            return self._lio().start()
        iqn, lun, path = self.params.target_iqn, self.params.lun, self.params.path
        with self.tgt_lock():
            target = self.targets().get(iqn)
            if target is None:
                raise ocf.GenericError("target %s is not running on this node: start its "
                                       "iSCSITarget first (same group, or order + colocation)"
                                       % iqn)
            if lun in target.luns:
                if self._same_store(target.luns[lun], path):
                    self.remember(iqn, lun, path)
                    return None
                raise ocf.GenericError("LUN %d of %s is already backed by %s, not %s"
                                       % (lun, iqn, target.luns[lun], path))
            inquiry = self._lu_params()
            tgt = self.tgt
            options = []
            for name, flag, _ in _BACKING_OPTIONS:
                if getattr(self.params, name):
                    options += [flag, getattr(self.params, name)]
            tgt.new_lu(target.tid, lun, path, options)
            self.remember(iqn, lun, path)
            if inquiry:
                try:
                    tgt.update_lu(target.tid, lun, inquiry)
                except ocf.OCFError as exc:
                    self.log.error("setting %s failed (%s); removing the LU again"
                                   % (", ".join(n for n, _ in inquiry), exc.message))
                    self._try_delete(target.tid, lun)
                    raise
        self.log.info("LUN %d of %s exports %s" % (lun, iqn, path))
        return None

    def release(self, iqn, lun, path):
        """Rounds of removal until the LU is gone, the lock held only during a round: an
        LU whose backing store hangs under an initiator's I/O must not keep every other
        target and LU on this tgtd from starting and stopping meanwhile."""
        if self.lio:
            return self._lio().release(iqn, lun, path)
        if not self.deadline.wait_for(lambda: self._locked(self._remove, iqn, lun, path),
                                      0.2, 1.0):
            raise ocf.GenericError("LUN %d of %s is still in tgtd (in use by an initiator "
                                   "that keeps logging in, or I/O stuck on its backing "
                                   "store?) after %.0fs of stop"
                                   % (lun, iqn, self.deadline.seconds))

    # --- helpers ------------------------------------------------------------------------
    def _lu_params(self):
        """[(name, value)] to set on the new LU: its identity, the inquiry fields given,
        then additional_parameters."""
        return self._identity() + [
            (name, getattr(self.params, name)) for name, _, _ in _INQUIRY
            if name not in _IDENTITY_DEFAULTS and getattr(self.params, name)
        ] + base.name_value_pairs(self.params.additional_parameters)

    def _identity(self):
        """[(scsi_id, ...), (scsi_sn, ...)]: explicit values, else derived from the instance.

        tgt's own defaults come from the target id, which differs between
        nodes; without an instance name (an agent run by hand) there is
        nothing node-independent to derive from, and tgt's default stays."""
        from hasf.agents.scsi_identity import identity

        instance = self.invocation.instance
        if not instance:
            self.log.warning("no resource instance name: scsi_id/scsi_sn not derived from it")
            return [(n, getattr(self.params, n)) for n in _IDENTITY_DEFAULTS
                    if getattr(self.params, n)]
        scsi_id, scsi_sn = identity(instance, self.params.scsi_id, self.params.scsi_sn)
        for name, value in (("scsi_id", scsi_id), ("scsi_sn", scsi_sn)):
            if not base.is_tgt_value(value):
                raise ocf.NotConfigured("%s derived from the resource name %r would be %r, "
                                        "which tgt cannot take; set %s" % (name, instance,
                                                                           value, name))
        return [("scsi_id", scsi_id), ("scsi_sn", scsi_sn)]

    def _find(self, iqn, lun, path):
        """(tid, lun) when the target has this LUN on this backing store, else None."""
        target = self.targets().get(iqn)
        if target is None or lun not in target.luns:
            return None
        if not self._same_store(target.luns[lun], path):
            self.log.warning("LUN %d of %s is backed by %s, not %s: not this resource"
                             % (lun, iqn, target.luns[lun], path))
            return None
        return target.tid, lun

    @staticmethod
    def _same_store(theirs, ours):
        return theirs == ours or (theirs is not None and
                                  os.path.realpath(theirs) == os.path.realpath(ours))

    def _remove(self, iqn, lun, path):
        """One round of stop: True once the LU is gone.

        tgt refuses to delete an LU while an initiator has a session with its
        target; waiting for that would run the stop into its timeout and get
        the node fenced.  Stopping the LU takes it from its initiators anyway,
        so their sessions are closed (they log in again and find it gone)."""
        found = self._find(iqn, lun, path)
        if found is None:
            return True
        if not self._try_delete(*found):
            target = self.targets().get(iqn)
            if target is not None and target.sessions:
                self.log.info("closing %d initiator session(s) of %s to remove LUN %d"
                              % (len(target.sessions), iqn, lun))
                self.tgt.close_sessions(target)
                self._try_delete(*found)
        return self._find(iqn, lun, path) is None

    def _try_delete(self, tid, lun):
        """True when tgtd accepted the delete."""
        from hasf.agents.tgt import TgtRefused

        try:
            self.tgt.delete_lu(tid, lun)
            return True
        except TgtRefused as exc:
            self.log.warning("%s (will retry)" % exc.message)
            return False


main = ocf.main_for(ISCSILogicalUnit)
