"""ocf:hasf:iSCSILogicalUnit with implementation=lio-t: a backstore and its LUN, in configfs.

The backstore (liot_bstype block -> iblock, fileio -> fileio) is named after
the resource instance, as ClusterLabs' lio-t names it; its unit serial
(wwn/vpd_unit_serial, which LIO turns into VPD pages 0x80 and 0x83) is
scsi_sn, by default derived from the instance name (agents/scsi_identity):
the same disk to initiators on every node, whatever else configfs holds.

Differences from ClusterLabs' lio-t:
- monitor checks *this* target's LUN N and that it links to a backstore on
  *this* path (ClusterLabs globs lun_N/*/udev_path);
- per-LU allowed_initiators restricts: the LUN is mapped only into those
  initiators' ACLs (made when missing, removed on stop if this LU made them);
  unset, it is mapped into every ACL of the target, as targetcli does;
- fileio backstores are write-through (targetcli's default is write-back:
  acknowledged writes in the SAN node's page cache are lost at failover);
- stop removes what start made, bounded, and fails (so the node is fenced)
  rather than report a LUN gone that is still exported.
"""

import os
import stat

from hasf.agents import lio
from hasf.agents import lio_configfs as cfs
from hasf import ocf

PLUGINS = {"block": "iblock", "fileio": "fileio"}
#: wwn attribute file of each inquiry parameter LIO lets us set
WWN = (("vendor_id", "vendor_id"), ("product_id", "product_id"), ("product_rev", "revision"))
EMULATE = ("emulate_tpu", "emulate_3pc", "emulate_caw")
TGT_ONLY = ("tgt_bstype", "tgt_bsoflags", "tgt_bsopts", "tgt_device_type", "tgt_control_port")


def _same_path(theirs, ours):
    return theirs == ours or (theirs is not None and
                              os.path.realpath(theirs) == os.path.realpath(ours))


def _is_file(path):
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False  # validate's existence check names a missing path


class LioLogicalUnit:
    """The lio-t half of ISCSILogicalUnit; `agent` supplies params, log, deadline, lock."""

    def __init__(self, agent):
        self.agent = agent
        self.params = agent.params
        self.log = agent.log
        self.configfs = cfs.Configfs(agent.deadline, agent.log)
        self.name = agent.invocation.instance or "default"

    def validate(self):
        given = [n for n in TGT_ONLY if self.params.given(n)]
        if given:
            raise ocf.NotConfigured("%s: tgt settings, not LIO's (with lio-t set liot_bstype)"
                                    % ", ".join(given))
        if "/" in self.name or self.name in (".", ".."):
            raise ocf.NotConfigured("the resource name %r cannot name a LIO backstore"
                                    % self.name)
        if self.params.liot_bstype == "block" and _is_file(self.params.path):
            raise ocf.NotConfigured("liot_bstype=block needs a block device; %s is a file "
                                    "(use liot_bstype=fileio)" % self.params.path)
        if self.params.scsi_id:
            self.log.warning("scsi_id is not used with lio-t: LIO derives VPD page 0x83 from "
                             "the unit serial (scsi_sn)")

    # --- monitor --------------------------------------------------------------------------
    def state_of(self, iqn, lun, path):
        state = self.configfs.ask(lio.lun_state, (cfs.ROOT, cfs.SYSFS, iqn, lun, self.name),
                                  "LUN %d of %s" % (lun, iqn))
        if "absent" in state:
            return lio.absent_or_unknown(state["absent"], "target %s" % iqn)
        if state["store"] is None:
            left = [hba for hba, where in state["leftover"] if _same_path(where, path)]
            if left:
                raise ocf.GenericError("backstore %s/%s of this LU exists without its LUN %d "
                                       "(left by a failed start or stop)"
                                       % (left[0], self.name, lun))
            return ocf.NOT_RUNNING
        if not _same_path(state.get("udev_path"), path):
            self.log.warning("LUN %d of %s is backed by %s, not %s: not this resource"
                             % (lun, iqn, state.get("udev_path"), path))
            return ocf.NOT_RUNNING
        return ocf.SUCCESS

    # --- start ----------------------------------------------------------------------------
    def start(self):
        iqn, lun, path = self.params.target_iqn, self.params.lun, self.params.path
        with self.agent.lio_lock():
            detail = self.configfs.ask(lio.target_detail, (cfs.ROOT, cfs.SYSFS, iqn),
                                       "target %s" % iqn)
            if "absent" in detail:
                raise ocf.GenericError("target %s is not running on this node: start its "
                                       "iSCSITarget first (same group, or order + colocation)"
                                       % iqn)
            if self.state_of(iqn, lun, path) == ocf.SUCCESS:
                self.agent.remember(iqn, lun, path)
                return None
            if "lun_%d" % lun in detail["luns"]:
                raise ocf.GenericError("LUN %d of %s is already taken by another backstore"
                                       % (lun, iqn))
            found, hbas = self.configfs.ask(lio.backstores, (cfs.ROOT, self.name),
                                            "LIO backstores")
            if found:
                raise ocf.GenericError("a backstore named %s exists already (%s); stop this "
                                       "resource to remove it" % (self.name, found[0][0]))
            plan, made = self.plan(iqn, lun, path, detail, hbas)
            self.agent.remember(iqn, lun, path, *["acl %s" % a for a in made])
            try:
                self.configfs.apply(plan, "exporting %s as LUN %d of %s" % (path, lun, iqn))
            except cfs.ChangeRefused as exc:
                self.log.error("start failed (%s); removing what it made" % exc.message)
                if self.configfs.undo(plan, exc.done, "LUN %d of %s" % (lun, iqn)):
                    self.agent.forget()
                raise
        self.log.info("LUN %d of %s exports %s" % (lun, iqn, path))
        return None

    def backstore_steps(self, store, path):
        bstype = self.params.liot_bstype
        if bstype == "block":
            control = "udev_path=%s" % path
        else:  # fileio: a file needs its size; write-through (no fd_buffered_io)
            size = os.stat(path).st_size
            control = "fd_dev_name=%s" % path + (",fd_dev_size=%d" % size if size else "")
        from hasf.agents.scsi_identity import identity

        serial = identity(self.name, None, self.params.scsi_sn)[1]
        steps = [("mkdir", store), ("write", os.path.join(store, "control"), control),
                 ("write", os.path.join(store, "udev_path"), path),
                 ("write", os.path.join(store, "enable"), "1"),
                 ("write", os.path.join(store, "wwn", "vpd_unit_serial"), serial)]
        for param, attr in WWN:
            if getattr(self.params, param):
                steps.append(("write", os.path.join(store, "wwn", attr),
                              getattr(self.params, param)))
        for param in EMULATE:
            if getattr(self.params, param) is not None:
                steps.append(("write", os.path.join(store, "attrib", param),
                              str(getattr(self.params, param))))
        for name, value in _pairs(self.params.additional_parameters):
            steps.append(("write", os.path.join(store, "attrib", name), value))
        return steps

    def plan(self, iqn, lun, path, detail, hbas):
        """(steps, ACLs this LU makes): backstore, LUN, then its ACL mappings."""
        root = cfs.ROOT
        hba = lio.free_hba(hbas, PLUGINS[self.params.liot_bstype])
        store = os.path.join(root, "target", "core", hba, self.name)
        lun_dir = lio.tpg_path(root, iqn, "lun", "lun_%d" % lun)
        steps = [("mkdir", os.path.dirname(store))] + self.backstore_steps(store, path)
        steps += [("mkdir", lun_dir), ("symlink", os.path.join(lun_dir, self.name), store)]
        wanted = self.params.allowed_initiators.split()
        made = [i for i in wanted if i not in detail["acls"]]
        for initiator in (wanted or sorted(detail["acls"])):
            mapped = detail["acls"].get(initiator, {})
            if initiator in made:
                steps.append(("mkdir", lio.tpg_path(root, iqn, "acls", initiator)))
            acl_lun = lio.tpg_path(root, iqn, "acls", initiator, "lun_%d"
                                   % lio.free_mapped_number(mapped, lun))
            steps += [("mkdir", acl_lun), ("symlink", os.path.join(acl_lun, self.name),
                                           lun_dir)]
        return steps, made

    # --- stop -----------------------------------------------------------------------------
    def release(self, iqn, lun, path):
        """Rounds of removal, the lock held only during a round, until configfs holds
        neither the LUN nor the backstore."""
        if not self.agent.deadline.wait_for(
                lambda: self.agent.lio_locked(self._remove, iqn, lun, path), 0.2, 1.0):
            raise ocf.GenericError("LUN %d of %s (or its backstore %s) is still in configfs "
                                   "after %.0fs of stop" % (lun, iqn, self.name,
                                                            self.agent.deadline.seconds))

    def _made_acls(self):
        lines = self.agent.recorded() or []
        return {line[4:] for line in lines[3:] if line.startswith("acl ")}

    def _remove(self, iqn, lun, path):
        """One round of stop: True once neither the LUN nor our backstore is there."""
        detail = self.configfs.ask(lio.target_detail, (cfs.ROOT, cfs.SYSFS, iqn),
                                   "target %s" % iqn)
        if detail.get("absent") == "unmounted":
            self.configfs.mount("stop of LUN %d of %s" % (lun, iqn))
            return False        # the next round sees the kernel's view
        steps = []
        state = self.configfs.ask(lio.lun_state, (cfs.ROOT, cfs.SYSFS, iqn, lun, self.name),
                                  "LUN %d of %s" % (lun, iqn))
        if state.get("store") and _same_path(state.get("udev_path"), path):
            steps += self.lun_removal(iqn, lun, detail)
        found, hbas = self.configfs.ask(lio.backstores, (cfs.ROOT, self.name), "backstores")
        for hba, where in found:
            if _same_path(where, path):
                store = os.path.join(cfs.ROOT, "target", "core", hba)
                steps.append(("rmdir", os.path.join(store, self.name)))
                if hbas.get(hba) == [self.name]:
                    steps.append(("rmdir", store))
        if not steps:
            return True
        try:
            self.configfs.apply(steps, "removing LUN %d of %s" % (lun, iqn),
                                tolerate_absent=True)
        except cfs.ChangeRefused as exc:
            self.log.warning("%s (will retry)" % exc.message)
        return False  # the next round confirms it is gone

    def lun_removal(self, iqn, lun, detail):
        root = cfs.ROOT
        steps = lio.unmapping(root, iqn, detail, lun)
        ours = lio.tpg_path(root, iqn, "lun", "lun_%d" % lun)
        for initiator in sorted(self._made_acls()):
            mapped = detail["acls"].get(initiator)
            if mapped is not None and all(ours in links.values() for links in mapped.values()):
                steps.append(("rmdir", lio.tpg_path(root, iqn, "acls", initiator)))
        links = detail["luns"].get("lun_%d" % lun, {})
        steps += [("unlink", os.path.join(ours, n)) for n in sorted(links)]
        steps.append(("rmdir", ours))
        return steps


def _pairs(text):
    return [tuple(word.split("=", 1)) for word in text.split()]
