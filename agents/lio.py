"""LIO's objects as hasf's lio-t agents see them: a target's TPG 1, its LUNs, ACLs, backstores.

The layout (Linux's target_core/iscsi_target configfs, as targetcli makes it):

  target/iscsi/<iqn>/tpgt_1/{enable, attrib/*, param/*, auth/*}
  target/iscsi/<iqn>/tpgt_1/np/<address:port>/
  target/iscsi/<iqn>/tpgt_1/lun/lun_<N>/<name> -> target/core/<plugin>_<K>/<name>
  target/iscsi/<iqn>/tpgt_1/acls/<initiator>/{auth/*, lun_<M>/<name> -> ../lun/lun_<N>}
  target/core/<plugin>_<K>/<name>/{udev_path, enable, wwn/*, attrib/*}

Like ClusterLabs' lio-t, a LU's backstore is named after the resource
instance (so targetcli shows the same names and an LU ClusterLabs made is
recognised), with one HBA (<plugin>_<K>) per backstore as rtslib makes them.

Exactness: the target is found by its exact IQN, an LU by *its* target's
LUN N linking to a backstore whose udev_path is *its* path.  "Absent" is
said only when configfs provably holds nothing (lio_configfs.absence).
The read functions below run in the bounded child; they return builtins.
"""

import os

from hasf.agents import lio_configfs as cfs
from hasf.ocf.errors import CannotTell
from hasf.ocf.exitcodes import NOT_RUNNING

TPG = "tpgt_1"


def tpg_path(root, iqn, *parts):
    return os.path.join(root, "target", "iscsi", iqn, TPG, *parts)


def absent_or_unknown(why, what):
    """NOT_RUNNING when configfs proves absence; CannotTell when it cannot be seen."""
    if why == "unmounted":
        raise CannotTell("LIO (target_core_mod) is loaded but configfs is not mounted at "
                         "%s: %s cannot be seen" % (cfs.ROOT, what))
    return NOT_RUNNING


# --- reads (run in the child through Configfs.ask) ----------------------------------------
def target_state(root, sysfs, iqn):
    """("enabled"|"disabled", None) or ("absent", why) -- the monitor's one read."""
    enable = cfs.read(tpg_path(root, iqn, "enable"))
    if enable is None:
        return "absent", cfs.absence(root, sysfs, iqn)
    return ("enabled" if enable == "1" else "disabled"), None


def _links(directory):
    """{entry: where it points} for the symlinks in a configfs directory."""
    out = {}
    for name in cfs.listing(directory) or []:
        where = cfs.link(os.path.join(directory, name))
        if where is not None:
            out[name] = where
    return out


def _numbered(directory, prefix):
    return [n for n in cfs.listing(directory) or [] if n.startswith(prefix)
            and n[len(prefix):].isdigit()]


def target_detail(root, sysfs, iqn):
    """Everything start and stop need of one target; {"absent": why} if it is not there."""
    enable = cfs.read(tpg_path(root, iqn, "enable"))
    if enable is None:
        return {"absent": cfs.absence(root, sysfs, iqn)}
    luns = {n: _links(tpg_path(root, iqn, "lun", n)) for n in _numbered(tpg_path(root, iqn,
                                                                               "lun"), "lun_")}
    acls = {}
    for initiator in cfs.listing(tpg_path(root, iqn, "acls")) or []:
        base = tpg_path(root, iqn, "acls", initiator)
        acls[initiator] = {m: _links(os.path.join(base, m)) for m in _numbered(base, "lun_")}
    return {"enable": enable, "luns": luns, "acls": acls,
            "portals": cfs.listing(tpg_path(root, iqn, "np")) or []}


def backstores(root, name):
    """[(hba dir, udev_path)] of every backstore called `name`, and the HBA dirs in use."""
    core = os.path.join(root, "target", "core")
    found, hbas = [], {}
    for hba in cfs.listing(core) or []:
        plugin, _, index = hba.rpartition("_")
        if not (plugin and index.isdigit()):
            continue  # alua/ and anything else that is not an HBA
        entries = cfs.listing(os.path.join(core, hba))
        if entries is None:
            continue
        hbas[hba] = [e for e in entries if e != "hba_info" and e != "hba_mode"]
        if name in entries:
            found.append((hba, cfs.read(os.path.join(core, hba, name, "udev_path"))))
    return found, hbas


def lun_state(root, sysfs, iqn, lun, name):
    """The monitor's read of one LU: {"absent": why} when the target is not there, else
    {"store": backstore dir or None, "udev_path": ..., "leftover": [(hba, udev_path)]}."""
    directory = tpg_path(root, iqn, "lun", "lun_%d" % lun)
    links = _links(directory)
    if not links:
        if cfs.read(tpg_path(root, iqn, "enable")) is None:
            return {"absent": cfs.absence(root, sysfs, iqn)}
        return {"store": None, "leftover": backstores(root, name)[0]}
    store = sorted(links.values())[0]
    return {"store": store, "udev_path": cfs.read(os.path.join(store, "udev_path"))}


# --- plans (lists of steps for Configfs.apply) -------------------------------------------
def auth_steps(auth_dir, userid, password, userid_mutual=None, password_mutual=None):
    """CHAP credentials into an auth directory; the password files made 0600 first, so
    no local user reads a secret configfs would otherwise show to everyone."""
    steps = [("chmod", os.path.join(auth_dir, "password"), 0o600),
             ("chmod", os.path.join(auth_dir, "password_mutual"), 0o600),
             ("write", os.path.join(auth_dir, "userid"), userid),
             ("write", os.path.join(auth_dir, "password"), password)]
    if userid_mutual:
        steps += [("write", os.path.join(auth_dir, "userid_mutual"), userid_mutual),
                  ("write", os.path.join(auth_dir, "password_mutual"), password_mutual)]
    return steps


def removal_of_target(root, iqn, detail):
    """Steps that take a target away: disable (closes its sessions), ACLs, LUNs, portals."""
    steps = []
    if detail.get("enable") == "1":
        steps.append(("write", tpg_path(root, iqn, "enable"), "0"))
    for initiator, mapped in sorted(detail.get("acls", {}).items()):
        for number, links in sorted(mapped.items()):
            steps += [("unlink", tpg_path(root, iqn, "acls", initiator, number, n))
                      for n in sorted(links)]
            steps.append(("rmdir", tpg_path(root, iqn, "acls", initiator, number)))
        steps.append(("rmdir", tpg_path(root, iqn, "acls", initiator)))
    for number, links in sorted(detail.get("luns", {}).items()):
        steps += [("unlink", tpg_path(root, iqn, "lun", number, n)) for n in sorted(links)]
        steps.append(("rmdir", tpg_path(root, iqn, "lun", number)))
    steps += [("rmdir", tpg_path(root, iqn, "np", p)) for p in detail.get("portals", [])]
    steps += [("rmdir", tpg_path(root, iqn)),
              ("rmdir", os.path.join(root, "target", "iscsi", iqn))]
    return steps


def unmapping(root, iqn, detail, lun):
    """Steps that take LUN `lun` out of every ACL that maps it."""
    ours = tpg_path(root, iqn, "lun", "lun_%d" % lun)
    steps = []
    for initiator, mapped in sorted(detail["acls"].items()):
        for number, links in sorted(mapped.items()):
            if ours in links.values():
                steps += [("unlink", tpg_path(root, iqn, "acls", initiator, number, n))
                          for n in sorted(links)]
                steps.append(("rmdir", tpg_path(root, iqn, "acls", initiator, number)))
    return steps


def free_mapped_number(mapped, wanted):
    """The mapped LUN number an ACL shows this LUN as: its own number when free."""
    used = {int(m[4:]) for m in mapped}
    if wanted not in used:
        return wanted
    return min(set(range(len(used) + 1)) - used)


def free_hba(hbas, plugin):
    """The lowest <plugin>_<K> not in use (one HBA per backstore, as rtslib does)."""
    used = {h for h in hbas}
    index = 0
    while "%s_%d" % (plugin, index) in used:
        index += 1
    return "%s_%d" % (plugin, index)
