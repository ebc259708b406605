"""[san.chap]: one CHAP setting, written to both ends of the scenario's iSCSI path.

The target (ocf:hasf:iSCSITarget, ClusterLabs' names: incoming_* for the
initiators' login, outgoing_* for mutual CHAP) and the initiator clone
(ocf:hasf:iscsi, open-iscsi's names: username/password, username_in/
password_in) must agree; written once here, they cannot drift apart.

Passwords belong in root-only files on every node (`password-file`): a
password given in the spec is stored in the CIB, and every reader of the
CIB sees it -- members of haclient, `cibadmin -Q`, crm_report archives,
support tickets -- so the spec is accepted with a warning that says so.
tgt is refused: its tgtadm takes the password on the command line, where
every process on the SAN node can read it (the agent refuses it too; saying
so here fails before anything reaches a cluster).
"""

import posixpath

KEYS = ("username", "password", "password-file",
        "target-username", "target-password", "target-password-file")

#: spec key prefix -> (target's parameter prefix, initiator's parameter suffix)
_SIDES = {"": ("incoming_", ""), "target-": ("outgoing_", "_in")}

#: the target's and the initiator's password parameters (each has a *_file twin)
PASSWORD_PARAMS = frozenset(("incoming_password", "outgoing_password", "password", "password_in"))

CIB_READERS = ("is stored in the CIB, where every reader of the CIB sees it (members of "
               "haclient, cibadmin -Q, crm_report archives): prefer %s, a root-only file "
               "(chmod 600) with the password on every node")


class Chap:
    """The scenario's CHAP: the initiators' login and, optionally, the target's (mutual)."""

    def __init__(self, sides):
        #: {"": (user, password, password_file), "target-": (...)} for the sides given
        self.sides = sides

    def target_params(self):
        """ocf:hasf:iSCSITarget's CHAP parameters."""
        out = {}
        for prefix, (user, password, password_file) in self.sides.items():
            target = _SIDES[prefix][0]
            out[target + "username"] = user
            out.update(_password(target + "password", password, password_file))
        return out

    def initiator_params(self):
        """ocf:hasf:iscsi's CHAP parameters."""
        out = {}
        for prefix, (user, password, password_file) in self.sides.items():
            suffix = _SIDES[prefix][1]
            out["username" + suffix] = user
            out.update(_password("password" + suffix, password, password_file))
        return out


def _password(name, password, password_file):
    return {name + "_file": password_file} if password_file else {name: password}


def read_chap(r, table, implementation, where="[san.chap]"):
    """The Chap of a [san.chap] table (None when absent); problems go to r.p."""
    if not table:
        return None
    r.keys(table, where, KEYS)
    sides = {}
    for prefix in _SIDES:
        side = _side(r, table, prefix, where)
        if side is not None:
            sides[prefix] = side
    if "" not in sides:
        r.p.error(where, "needs username and a password (password-file or password): "
                         "target-* alone would be mutual CHAP without the initiators' login")
    if (implementation or "tgt") != "lio-t":
        r.p.error(where, "CHAP needs implementation = \"lio-t\" in [san]: tgt's tgtadm takes "
                         "the password on its command line, readable by every process on "
                         "the SAN node")
    return Chap(sides)


def _side(r, table, prefix, where):
    """(user, password, password_file) of one side, or None when none of its keys is set."""
    user = r.string(table, prefix + "username", where)
    password = r.string(table, prefix + "password", where)
    password_file = r.string(table, prefix + "password-file", where)
    if user is None and password is None and password_file is None:
        return None
    if user is None:
        r.p.error(where, "%spassword without %susername" % (prefix, prefix))
    if password is not None and password_file is not None:
        r.p.error(where, "give %spassword or %spassword-file, not both" % (prefix, prefix))
    elif password is None and password_file is None:
        r.p.error(where, "%susername needs %spassword-file (or %spassword)"
                  % (prefix, prefix, prefix))
    if password is not None:
        r.p.warn(where, "%spassword %s" % (prefix, CIB_READERS % (prefix + "password-file")))
    if password_file is not None and not posixpath.isabs(password_file):
        r.p.error(where, "%spassword-file must be an absolute path on the nodes" % prefix)
    return user, password, password_file


def clashes(chap, target_params, initiator_params):
    """Parameters [san.chap] sets that target-params/initiator-params set too."""
    return sorted((set(chap.target_params()) & set(target_params))
                  | (set(chap.initiator_params()) & set(initiator_params)))
