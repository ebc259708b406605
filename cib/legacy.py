"""LEGACY: a Heartbeat v2 (CRM 2.0.x, SLES 10) rendering of a generated CIB.

For users of the seed's era only.  Current Pacemaker cannot load this
format and hasf's own tools (verify, simulate, apply) never use it.  It is
derived from the modern configuration hasf generates, element by element:

- no validate-with; every nvpair set wraps its pairs in <attributes>;
- underscores: stonith_enabled, no_quorum_policy, target_role, clone_max,
  on_fail, start_delay, boolean_op; default stickiness and the default op
  timeout live in crm_config (default_resource_stickiness,
  default_action_timeout);
- rsc_location only with rules (#uname eq node); rsc_order with
  from/to/type="after"/action (Optional becomes score 0); rsc_colocation
  with from/to/score;
- clones carry clone_max/clone_node_max explicitly (the old default was 1);
- fence devices become cloned cluster-glue plugins (`fence_hasf_X` ->
  `external/hasf-X`, the same hasf device behind its other front end), as
  Heartbeat-era clusters ran STONITH (the DoFencing clone pattern); Pacemaker's
  pcmk_* parameters did not exist: pcmk_host_list becomes `hostlist`.
Whatever the old CRM had no notion of (fencing topology, resource sets,
migration-threshold, ...) is left out and listed in a comment at the top.
Check it with `xmllint --dtdvalid crm.dtd` (the DTD of pacemaker's 1.0/1.1
tags or heartbeat 2.0.x).
"""

from lxml import etree

from hasf.cib.errors import CibError
from hasf.cib.ids import IdProvider

PROPERTY_NAMES = {"stonith-enabled": "stonith_enabled", "stonith-action": "stonith_action",
                  "no-quorum-policy": "no_quorum_policy",
                  "symmetric-cluster": "symmetric_cluster"}
RSC_DEFAULTS = {"resource-stickiness": "default_resource_stickiness"}
OP_DEFAULTS = {"timeout": "default_action_timeout"}
OP_ATTRS = {"on-fail": "on_fail", "start-delay": "start_delay"}
#: meta attributes the 2.0.x CRM understood (as instance attributes, underscored)
META_NAMES = {"target-role": "target_role", "is-managed": "is_managed",
              "resource-stickiness": "resource_stickiness", "allow-migrate": "allow_migrate",
              "priority": "priority", "multiple-active": "multiple_active"}
CLONE_ATTRS = {"notify", "interleave", "globally-unique", "ordered"}
CLONE_PAIRS = {"clone-max": "clone_max", "clone-node-max": "clone_node_max"}


class _Renderer:
    def __init__(self, modern):
        self.modern = modern
        self.ids = IdProvider()
        self.notes = []
        self.nodes = [n.get("uname") for n in modern.iterfind("configuration/nodes/node")]

    def attributes_set(self, tag, set_id, pairs):
        element = etree.Element(tag, id=self.ids.new(set_id))
        attributes = etree.SubElement(element, "attributes")
        for name, value in pairs:
            etree.SubElement(attributes, "nvpair", id=self.ids.new(element.get("id"), name),
                             name=name, value=value)
        return element

    def render(self):
        root = etree.Element("cib", admin_epoch="0", epoch="1", num_updates="0")
        configuration = etree.SubElement(root, "configuration")
        configuration.append(self.crm_config())
        etree.SubElement(configuration, "nodes")   # Heartbeat fills in nodes (with UUIDs)
        resources = etree.SubElement(configuration, "resources")
        for item in self.modern.find("configuration/resources"):
            resources.append(self.resource(item))
        constraints = etree.SubElement(configuration, "constraints")
        for item in self.modern.find("configuration/constraints"):
            converted = self.constraint(item)
            if converted is not None:
                constraints.append(converted)
        if self.modern.find("configuration/fencing-topology") is not None:
            self.notes.append("fencing-topology (no fencing levels in Heartbeat v2)")
        etree.SubElement(root, "status")
        root.addprevious(etree.Comment(
            " LEGACY Heartbeat v2 (CRM 2.0.x) rendering by hasf-cib, for the seed's era only;"
            " current Pacemaker cannot load it. "))
        if self.notes:
            root.addprevious(etree.Comment(" left out (unknown to the old CRM): %s "
                                           % "; ".join(dict.fromkeys(self.notes))))
        return root

    # -- sections --------------------------------------------------------------------
    def crm_config(self):
        crm_config = etree.Element("crm_config")
        pairs = []
        for pair in self.modern.iterfind("configuration/crm_config/cluster_property_set/nvpair"):
            self._mapped(pairs, PROPERTY_NAMES, pair, "cluster property")
        for section, table in (("rsc_defaults", RSC_DEFAULTS), ("op_defaults", OP_DEFAULTS)):
            for pair in self.modern.iterfind("configuration/%s//nvpair" % section):
                self._mapped(pairs, table, pair, section)
        crm_config.append(self.attributes_set("cluster_property_set", "cib-bootstrap-options",
                                              pairs))
        return crm_config

    def _mapped(self, pairs, table, pair, what):
        name = pair.get("name")
        if name in table:
            pairs.append((table[name], pair.get("value")))
        else:
            self.notes.append("%s %s" % (what, name))

    def resource(self, item):
        if item.tag == "primitive" and item.get("class") == "stonith":
            return self.fence(item)
        if item.tag == "primitive":
            return self.primitive(item)
        if item.tag == "group":
            group = etree.Element("group", id=item.get("id"))
            self.ids.claim(item.get("id"))
            for child in item.findall("primitive"):
                group.append(self.primitive(child))
            return group
        if item.tag == "clone":
            return self.clone(item)
        raise CibError("legacy rendering: %s %s has no Heartbeat v2 form"
                       % (item.tag, item.get("id")))

    def primitive(self, item, params_override=None):
        rid = item.get("id")
        self.ids.claim(rid)
        element = etree.Element("primitive", id=rid)
        element.set("class", item.get("class"))
        element.set("type", item.get("type"))
        if item.get("provider"):
            element.set("provider", item.get("provider"))
        operations = item.find("operations")
        if operations is not None:
            ops = etree.SubElement(element, "operations")
            for op in operations.findall("op"):
                ops.append(self.op(rid, op))
        pairs = params_override if params_override is not None else [
            (p.get("name"), p.get("value")) for p in item.iterfind("instance_attributes/nvpair")]
        for pair in item.iterfind("meta_attributes/nvpair"):
            if pair.get("name") == "resource-stickiness":
                element.set("resource_stickiness", pair.get("value"))
            else:
                self._mapped(pairs, META_NAMES, pair, "meta attribute")
        if pairs:
            element.append(self.attributes_set("instance_attributes",
                                               rid + "-instance_attributes", pairs))
        return element

    def op(self, rid, op):
        element = etree.Element("op", id=self.ids.new(rid, op.get("name"), op.get("interval")),
                                name=op.get("name"), interval=op.get("interval"))
        for attr, value in op.attrib.items():
            if attr in ("id", "name", "interval"):
                continue
            element.set(OP_ATTRS.get(attr, attr), value)
        pairs = [(p.get("name"), p.get("value")) for p in op.iterfind("instance_attributes/nvpair")]
        if pairs:
            element.append(self.attributes_set("instance_attributes",
                                               element.get("id") + "-instance_attributes", pairs))
        return element

    def clone(self, item, child=None):
        cid = item.get("id")
        self.ids.claim(cid)
        element = etree.Element("clone", id=cid)
        meta = {p.get("name"): p.get("value") for p in item.iterfind("meta_attributes/nvpair")}
        element.set("globally_unique", meta.pop("globally-unique", "false"))
        for name in ("notify", "interleave", "ordered"):
            if name in meta:
                element.set(name, meta.pop(name))
        pairs = [("clone_max", meta.pop("clone-max", str(len(self.nodes) or 1))),
                 ("clone_node_max", meta.pop("clone-node-max", "1"))]
        for name in meta:
            self.notes.append("clone meta attribute %s" % name)
        element.append(self.attributes_set("instance_attributes", cid + "-instance_attributes",
                                           pairs))
        inner = child if child is not None else item.find("primitive")
        if inner is None:
            inner = item.find("group")
        element.append(self.resource(inner) if child is None else inner)
        return element

    def fence(self, item):
        kind = item.get("type")
        if kind.startswith("fence_hasf_"):
            kind = "external/hasf-" + kind[len("fence_hasf_"):]
        elif not kind.startswith("external/"):
            self.notes.append("fence agent %s (Heartbeat v2 ran cluster-glue plugins only)"
                              % kind)
        pairs = []
        for pair in item.iterfind("instance_attributes/nvpair"):
            name = pair.get("name")
            if name == "pcmk_host_list":
                pairs.append(("hostlist", pair.get("value")))
            elif name.startswith("pcmk_"):
                self.notes.append("fence parameter %s" % name)
            else:
                pairs.append((name, pair.get("value")))
        primitive = self.primitive(item, pairs)
        primitive.set("type", kind)
        wrapper = etree.Element("clone", id=item.get("id") + "-clone")
        return self.clone(wrapper, primitive)

    # -- constraints ------------------------------------------------------------------
    def constraint(self, item):
        cid = item.get("id")
        self.ids.claim(cid)
        if item.find("resource_set") is not None:
            self.notes.append("resource set constraint %s" % cid)
            return None
        if item.tag == "rsc_location":
            element = etree.Element("rsc_location", id=cid, rsc=item.get("rsc"))
            if item.get("node"):
                rule = etree.SubElement(element, "rule", id=self.ids.new(cid, "rule"),
                                        score=item.get("score"))
                etree.SubElement(rule, "expression", id=self.ids.new(cid, "expr"),
                                 attribute="#uname", operation="eq", value=item.get("node"))
            for rule in item.findall("rule"):
                new = etree.SubElement(element, "rule", id=self.ids.new(rule.get("id")),
                                       score=rule.get("score"))
                new.set("boolean_op", rule.get("boolean-op", "and"))
                for expr in rule.findall("expression"):
                    copy = etree.SubElement(new, "expression", id=self.ids.new(expr.get("id")),
                                            attribute=expr.get("attribute"),
                                            operation=expr.get("operation"))
                    if expr.get("value") is not None:
                        copy.set("value", expr.get("value"))
            return element
        if item.tag == "rsc_order":
            # "then-action THEN after first-action FIRST"
            element = etree.Element("rsc_order", id=cid)
            element.set("from", item.get("then"))
            element.set("action", item.get("then-action", "start"))
            element.set("type", "after")
            element.set("to", item.get("first"))
            element.set("to_action", item.get("first-action", "start"))
            if item.get("kind") == "Optional":
                element.set("score", "0")
            elif item.get("kind") == "Serialize":
                self.notes.append("Serialize kind of %s (rendered as mandatory)" % cid)
            if item.get("symmetrical"):
                element.set("symmetrical", item.get("symmetrical"))
            return element
        if item.tag == "rsc_colocation":
            element = etree.Element("rsc_colocation", id=cid)
            element.set("from", item.get("rsc"))
            element.set("to", item.get("with-rsc"))
            element.set("score", item.get("score"))
            return element
        self.notes.append("%s %s" % (item.tag, cid))
        return None


def render(modern_root):
    """The legacy document (an lxml root with its leading comments) for a generated CIB."""
    return _Renderer(modern_root).render()


def tostring(root):
    return etree.tostring(root.getroottree(), pretty_print=True, encoding="unicode")
