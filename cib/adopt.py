"""`hasf-cib adopt`: a CIB with ClusterLabs' agents, read back as the hasf spec that builds it.

The CIB (a file, or the live one through hasf.cib.tools) is read with lxml;
each part of the scenario is recognised by its agent -- fence devices, the
SAN group (iSCSITarget + iSCSILogicalUnit), the initiator clone, the OCFS2
membership clone, Filesystem stores, VirtualDomain/Xen VMs -- and its
parameters are checked with the hasf agent's own declarations and refusal
table (hasf.clusterlabs), exactly as the agent will check them.  The
constraints the spec regenerates (stores after the initiator and the
membership, VMs after and with their stores, the SAN pinned to its node, a
fence device kept off its target) are recognised and dropped; a VM's
locations become prefer/avoid/only.  Whatever has no hasf form -- an agent
without counterpart, a refused parameter, a constraint a spec cannot say --
is a problem, all of them reported at once, and no spec is printed.
"""

import hashlib
import importlib

from hasf import clusterlabs
from hasf.cib.errors import CibError, Problems

#: ClusterLabs (and hasf) agents -> the spec role they play
ROLES = {
    "ocf:heartbeat:VirtualDomain": "vm", "ocf:heartbeat:Xen": "vm", "ocf:hasf:VirtualMachine": "vm",
    "ocf:heartbeat:Filesystem": "store", "ocf:hasf:Filesystem": "store",
    "ocf:heartbeat:iscsi": "initiator", "ocf:hasf:iscsi": "initiator",
    "ocf:heartbeat:iSCSITarget": "target", "ocf:hasf:iSCSITarget": "target",
    "ocf:heartbeat:iSCSILogicalUnit": "lun", "ocf:hasf:iSCSILogicalUnit": "lun",
    "ocf:hasf:OCFS2Membership": "membership", "ocf:pacemaker:o2cb": "membership",
}
#: role -> (module, class) of the hasf agent whose declarations check the parameters
AGENT_CLASSES = {
    "vm": ("hasf.agents.virtual_machine", "VirtualMachine"),
    "store": ("hasf.agents.filesystem", "Filesystem"),
    "initiator": ("hasf.agents.iscsi_initiator", "ISCSIInitiator"),
    "target": ("hasf.agents.iscsi_target", "ISCSITarget"),
    "lun": ("hasf.agents.iscsi_logical_unit", "ISCSILogicalUnit"),
    "membership": ("hasf.ocfs2_membership.agent", "OCFS2Membership"),
}
#: what an unset parameter meant to the ClusterLabs agent, where hasf's default differs
#: (iSCSILogicalUnit's scsi_id/scsi_sn depend on the resource: Adopter.keep_defaults)
UNSET_MEANS = {
    "ocf:heartbeat:Xen": {"autoset_utilization_cpu": "false",
                          "autoset_utilization_hv_memory": "false"},
    "ocf:heartbeat:Filesystem": {"fast_stop": "false"},
}
#: clone meta attributes hasf.cib.expand sets itself (from the agent's meta-data)
GENERATED_CLONE_META = ("interleave", "notify")
#: properties Pacemaker maintains itself
OWN_PROPERTIES = ("dc-version", "cluster-infrastructure", "cluster-name", "have-watchdog",
                  "last-lrm-refresh")
OP_KEYS = ("interval", "timeout", "role", "on-fail", "start-delay")


def _int(text, default=0):
    text = (text or "").strip()
    return int(text) if text.lstrip("-").isdigit() else default


def agent_of(primitive):
    cls, provider, kind = (primitive.get(a) for a in ("class", "provider", "type"))
    if cls == "stonith":
        return kind or ""
    return ":".join(p for p in (cls, provider, kind) if p)


def _nvpairs(parent, tag, where, problems):
    """name -> value of the one <tag> set under parent (rules and id-refs are problems)."""
    sets = parent.findall(tag)
    if len(sets) > 1 or any(s.find("rule") is not None or s.get("id-ref") for s in sets):
        problems.error(where, "several or rule-based %s sets have no form in a hasf spec" % tag)
    out = {}
    for nvpair in (sets[0].findall("nvpair") if sets else ()):
        if nvpair.get("id-ref") or nvpair.get("name") is None:
            problems.error(where, "an nvpair by reference has no form in a hasf spec")
            continue
        out[nvpair.get("name")] = nvpair.get("value", "")
    return out


class Adopter:
    def __init__(self, root):
        if root.tag != "cib" or root.find("configuration") is None:
            raise CibError("not a CIB: the document is <%s> without <configuration>" % root.tag)
        self.cfg = root.find("configuration")
        self.problems = Problems()
        self.notes = []
        self.spec = {}
        self.top = {}          # top-level id (clone/group/primitive) -> (role, name)
        self.implied = set()   # constraint ids the spec regenerates
        self.vms = {}
        self.initiator_found = None  # (id, params) of the cloned initiator

    # -- the whole CIB -----------------------------------------------------------------------
    def adopt(self):
        self.cluster()
        for section, key in (("rsc_defaults", "resource-defaults"), ("op_defaults", "op-defaults")):
            element = self.cfg.find(section)
            if element is not None:
                values = _nvpairs(element, "meta_attributes", section, self.problems)
                if values:
                    self.spec[key] = values
        resources = self.cfg.find("resources")
        for element in (resources if resources is not None else ()):
            if isinstance(element.tag, str):
                self.resource(element)
        self.topology()
        self.constraints()
        self.problems.raise_if_any("the CIB")
        return self.ordered()

    def ordered(self):
        order = ("cluster", "resource-defaults", "op-defaults", "fence", "fencing-topology",
                 "san", "ocfs2", "store", "vm")
        return {k: self.spec[k] for k in order if k in self.spec}

    def cluster(self):
        nodes = [n.get("uname") for n in self.cfg.iterfind("nodes/node")
                 if n.get("type", "member") == "member" and n.get("uname")]
        if not nodes:
            self.problems.error("nodes", "the CIB lists no cluster nodes (a spec needs them)")
        props = {}
        crm = self.cfg.find("crm_config")
        for pset in (crm.findall("cluster_property_set") if crm is not None else ()):
            for nvpair in pset.findall("nvpair"):
                props[nvpair.get("name")] = nvpair.get("value", "")
        table = {"nodes": nodes}
        if props.get("cluster-name"):
            table["name"] = props["cluster-name"]
        if "stonith-enabled" in props:
            table["stonith-enabled"] = props.pop("stonith-enabled").lower() in (
                "true", "yes", "y", "on", "1")
        for name in ("stonith-action", "no-quorum-policy"):
            if name in props:
                table[name] = props.pop(name)
        if table.get("stonith-action") == "poweroff":
            table["stonith-action"] = "off"
        rest = {k: v for k, v in props.items() if k not in OWN_PROPERTIES}
        if rest:
            table["properties"] = rest
        self.spec["cluster"] = table

    # -- resources ---------------------------------------------------------------------------
    def resource(self, element):
        rid = element.get("id")
        inner = [e for e in element.iter("primitive", "group", "clone") if not e.get("id")]
        if not rid or inner:
            self.problems.error("resources", "a <%s> without an id is not a CIB's" % (
                inner[0].tag if inner else element.tag))
            return
        if element.tag == "primitive":
            self.primitive(element, rid, None)
        elif element.tag == "clone":
            inner = [c for c in element if c.tag in ("primitive", "group")]
            if len(inner) != 1 or inner[0].tag != "primitive":
                self.problems.error("clone %s" % rid, "a cloned group has no form in a hasf spec")
                return
            meta = _nvpairs(element, "meta_attributes", "clone %s" % rid, self.problems)
            self.primitive(inner[0], rid, meta)
        elif element.tag == "group":
            self.group(element, rid)
        else:
            self.problems.error("%s %s" % (element.tag, rid),
                                "a <%s> has no form in a hasf spec" % element.tag)

    def primitive(self, element, top, clone):
        rid = element.get("id")
        where = "resource %s" % rid
        agent = agent_of(element)
        if element.get("class") == "stonith":
            return self.fence(element, rid, agent)
        role = ROLES.get(agent)
        if role is None:
            self.problems.error(where, "agent %s has no hasf counterpart" % agent)
            return None
        if role in ("target", "lun"):
            self.problems.error(where, "an %s outside a group with its target has no form in "
                                "a hasf spec" % agent)
            return None
        if role in ("initiator", "membership") and clone is None:
            self.problems.error(where, "%s must be cloned (one on every node)" % agent)
            return None
        params = self.params(element, agent, role, where)
        if params is None:
            return None
        meta = _nvpairs(element, "meta_attributes", where, self.problems)
        extra = sorted(set(clone or {}) - set(GENERATED_CLONE_META))
        if extra:
            self.problems.error("clone %s" % top, "clone meta attributes %s have no form in a "
                                "hasf spec (it sets interleave and notify itself)"
                                % ", ".join(extra))
        self.top[top] = (role, rid)
        if role != "vm" and element.find("operations/op") is not None:
            self.notes.append("%s: its ops are not carried over: hasf-cib build gives it the "
                              "hasf agent's advertised timeouts (a spec sets ops for VMs and "
                              "[[resource]]s only)" % where)
        getattr(self, role)(element, rid, params, meta, clone, where)
        return None

    def params(self, element, agent, role, where):
        """The instance attributes, checked as the hasf agent will check them; harmless
        refused ones dropped (with a note); None when any is refused or invalid."""
        values = _nvpairs(element, "instance_attributes", where, self.problems)
        module, name = AGENT_CLASSES[role]
        cls = getattr(importlib.import_module(module), name)
        declared = {p.name for p in cls.parameters}
        refused = {r.name: r for r in cls.refused}
        counterpart = clusterlabs.counterpart_of(agent)
        if agent == "ocf:pacemaker:o2cb":
            self.problems.error(where, "%s: %s; give every node's o2net address in [ocfs2] "
                                "and use ocf:hasf:OCFS2Membership" % (agent, clusterlabs.O2CB_WAY))
            return None
        kept, failed = {}, False
        for pname, text in values.items():
            if pname in declared:
                kept[pname] = text
            elif pname in refused and refused[pname].passes(text):
                self.notes.append("%s: %s=%s dropped: it asks for nothing hasf does not do"
                                  % (where, pname, text))
            elif pname not in refused:
                self.problems.error(where, "parameter %s is not a parameter of ocf:hasf:%s"
                                    % (pname, cls.name))
                failed = True
        from hasf.ocf.params import parse_params

        env = {"OCF_RESKEY_" + k: v for k, v in values.items()}
        _parsed, found = parse_params(cls.parameters, env, refused=cls.refused)
        for problem in found:
            self.problems.error(where, problem)
            failed = True
        if counterpart is not None:
            kept.update(self.keep_defaults(counterpart, element.get("id"), values))
        return None if failed else kept

    def keep_defaults(self, counterpart, rid, values):
        """Where ClusterLabs' default differs from hasf's and users rely on it, write it out."""
        extra = {k: v for k, v in UNSET_MEANS.get(counterpart.agent, {}).items()
                 if k not in values}
        if counterpart.agent == "ocf:heartbeat:iSCSILogicalUnit":
            # hasf derives the same from the instance name, but the spec's LU is named
            # <san>-lun<N>: keep the identity of the name the initiators know
            if "scsi_id" not in values:
                extra["scsi_id"] = rid[:16]
            if "scsi_sn" not in values:
                extra["scsi_sn"] = hashlib.md5(rid.encode()).hexdigest()[:8]  # noqa: S324
        for pname, text in extra.items():
            self.notes.append("resource %s: %s=%s written out (%s's default; hasf's differs)"
                              % (rid, pname, text, counterpart.agent))
        return extra

    def fence(self, element, rid, agent):
        from hasf.cib import adopt_fence

        adopt_fence.fence(self, element, rid, agent)

    def group(self, element, gid):
        where = "group %s" % gid
        members = [m for m in element if m.tag == "primitive"]
        roles = [ROLES.get(agent_of(m)) for m in members]
        if not members or roles[0] != "target" or any(r != "lun" for r in roles[1:]) \
                or len(members) != len(element.findall("*")) - len(element.findall(
                    "meta_attributes")) - len(element.findall("instance_attributes")):
            self.problems.error(where, "a group has no form in a hasf spec, except the SAN's "
                                "(an iSCSITarget followed by its iSCSILogicalUnits)")
            return
        self.no_meta(_nvpairs(element, "meta_attributes", where, self.problems), where)
        for member in members:
            self.no_meta(_nvpairs(member, "meta_attributes", "resource %s" % member.get("id"),
                                  self.problems), "resource %s" % member.get("id"))
        target = self.params(members[0], agent_of(members[0]), "target", "resource %s"
                             % members[0].get("id"))
        if target is None:
            return
        portals = target.pop("portals", "0.0.0.0:3260").split()
        if len(portals) != 1:
            self.problems.error(where, "a spec's SAN has exactly one portal, not %d"
                                % len(portals))
        san = {"name": gid, "iqn": target.pop("iqn", ""), "portal": (portals or [""])[0]}
        if "implementation" in target:
            san["implementation"] = target.pop("implementation")
        if target:
            san["target-params"] = target
        luns = []
        for lun in members[1:]:
            params = self.params(lun, agent_of(lun), "lun", "resource %s" % lun.get("id"))
            if params is None:
                continue
            if params.pop("target_iqn", san["iqn"]) != san["iqn"]:
                self.problems.error("resource %s" % lun.get("id"), "target_iqn is not the "
                                    "group's target")
            entry = {"number": _int(params.pop("lun", "0")), "path": params.pop("path", "")}
            if params:
                entry["params"] = params
            luns.append(entry)
        san["lun"] = luns
        self.spec["san"] = san
        self.top[gid] = ("san", gid)

    def no_meta(self, meta, where):
        """Meta attributes of a resource the spec generates have no form in a spec."""
        if meta:
            self.problems.error(where, "meta attributes %s have no form in a hasf spec for "
                                "this resource" % ", ".join(sorted(meta)))

    def initiator(self, element, rid, params, meta, clone, where):
        self.no_meta(meta, where)
        self.initiator_found = (rid, params)

    def membership(self, element, rid, params, meta, clone, where):
        self.no_meta(meta, where)
        addresses = {}
        for word in params.pop("nodes", "").split():
            name, _, rest = word.partition(":")
            address, _, port = rest.partition(":")
            if port:
                self.problems.error(where, "a per-node o2net port (%s) has no form in a hasf "
                                    "spec" % word)
            addresses[name] = address
        table = {"addresses": addresses}
        if "cluster_name" in params:
            table["cluster-name"] = params.pop("cluster_name")
        if params:
            table["params"] = params
        self.spec["ocfs2"] = table

    def store(self, element, rid, params, meta, clone, where):
        entry = {"name": rid}
        for key in ("device", "directory", "fstype", "options"):
            if key in params:
                entry[key] = params.pop(key)
        entry["clone"] = clone is not None
        level = self.check_level(element)
        if level:
            entry["check-level"] = level
        if params:
            entry["params"] = params
        self.no_meta(meta, where)
        self.spec.setdefault("store", []).append(entry)

    def vm(self, element, rid, params, meta, clone, where):
        if clone is not None:
            self.problems.error(where, "a cloned VM has no form in a hasf spec")
            return
        entry = {"name": rid}
        for key in ("config", "hypervisor"):
            if key in params:
                entry[key] = params.pop(key)
        if params:
            entry["params"] = params
        if meta:
            entry["meta"] = meta
        ops = self.ops(element, where)
        if ops:
            entry["ops"] = ops
        self.spec.setdefault("vm", []).append(entry)
        self.vms[rid] = entry

    def check_level(self, element):
        for op in element.iterfind("operations/op"):
            for nvpair in op.iterfind("instance_attributes/nvpair"):
                if nvpair.get("name") == "OCF_CHECK_LEVEL":
                    return _int(nvpair.get("value"))
        return None

    def ops(self, element, where):
        out = []
        for op in element.iterfind("operations/op"):
            if not op.get("name"):
                self.problems.error(where, "an op without a name")
                continue
            entry = {"name": op.get("name")}
            for key in OP_KEYS:
                if op.get(key) is not None:
                    entry[key] = op.get(key)
            level = [n.get("value") for n in op.iterfind("instance_attributes/nvpair")
                     if n.get("name") == "OCF_CHECK_LEVEL"]
            if level:
                entry["check-level"] = _int(level[0])
            extra = set(op.attrib) - set(OP_KEYS) - {"id", "name"}
            if extra:
                self.problems.error(where, "op %s: %s have no form in a hasf spec"
                                    % (op.get("name"), ", ".join(sorted(extra))))
            out.append(entry)
        return out

    # -- fencing topology and constraints ---------------------------------------------------
    def topology(self):
        topo = self.cfg.find("fencing-topology")
        if topo is None:
            return
        levels = {}
        for level in sorted(topo.findall("fencing-level"), key=lambda e: _int(e.get("index"))):
            target = level.get("target")
            if not target:
                self.problems.error("fencing-level %s" % level.get("id"),
                                    "only levels for one node by name have a form in a spec")
                continue
            levels.setdefault(target, []).append(level.get("devices", "").split(","))
        if levels:
            self.spec["fencing-topology"] = levels

    def constraints(self):
        from hasf.cib import adopt_constraints

        adopt_constraints.apply(self)


def adopt(root):
    """(spec dict, notes): the hasf spec equivalent to a CIB root; SpecError with every
    problem when there is none."""
    from hasf.cib import spec as spec_module

    adopter = Adopter(root)
    spec = adopter.adopt()
    # what adopt prints must be a spec hasf-cib takes: the spec reader has the last word
    checked = spec_module.parse(spec, "the adopted spec", collect=True)
    checked.problems.raise_if_any("the spec adopted from the CIB")
    return spec, adopter.notes


def read(source=None, tools=None):
    """The CIB root: from the XML file `source`, or the live CIB (cibadmin --query)."""
    from lxml import etree

    from hasf.cib import build

    if source is not None:
        return build.parse_file(source)
    from hasf.cib.tools import Tools

    text = (tools or Tools()).query()
    try:
        return build.parse_text(text)
    except etree.XMLSyntaxError as exc:
        raise CibError("cibadmin --query did not give XML: %s" % exc) from None


def header(source):
    return ["hasf spec adopted by `hasf-cib adopt` from %s" % source,
            "Check it (hasf-cib verify SPEC), then switch over (hasf-cib apply SPEC)."]
