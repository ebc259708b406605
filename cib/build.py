"""lxml builders for every part of a Pacemaker CIB that hasf generates.

Each builder returns a detached lxml element (never joined strings) with ids
from an `IdProvider`, named the way pcs names them:

    <rsc>-instance_attributes-<name>     <rsc>-<op>-interval-<iv>
    <rsc>-clone                          location-<rsc>-<node>-<score>
    order-<first>-<then>-<kind>          colocation-<rsc>-<with>-<score>

`Cib` holds one document and its id provider and knows where each element
goes; `add()` places any builder's result in its section.
"""

import re

from lxml import etree

from hasf.durations import parse_duration
from hasf.cib.errors import CibError
from hasf.cib.ids import IdProvider, join

SCORE = re.compile(r"[-+]?(INFINITY|[0-9]+)\Z")
ORDER_KINDS = ("Mandatory", "Optional", "Serialize")
ACTIONS = ("start", "promote", "demote", "stop")
ROLES = ("Started", "Stopped", "Promoted", "Unpromoted", "Master", "Slave")
RULE_OPS = ("lt", "gt", "lte", "gte", "eq", "ne", "defined", "not_defined")
#: where each top-level element goes inside <configuration>
SECTIONS = {
    "cluster_property_set": "crm_config", "node": "nodes",
    "primitive": "resources", "group": "resources", "clone": "resources",
    "rsc_location": "constraints", "rsc_order": "constraints",
    "rsc_colocation": "constraints", "rsc_ticket": "constraints",
    "fencing-level": "fencing-topology",
}
SECTION_ORDER = ("crm_config", "rsc_defaults", "op_defaults", "nodes", "resources",
                 "constraints", "fencing-topology")


def text(value):
    """An nvpair/attribute value: booleans as true/false, the rest as str."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def score(value):
    """A Pacemaker score as text; raises CibError for anything else."""
    word = text(value).strip()
    if word.lower() in ("inf", "infinity", "+inf", "+infinity"):
        word = "INFINITY"
    elif word.lower() in ("-inf", "-infinity"):
        word = "-INFINITY"
    if not SCORE.match(word):
        raise CibError("%r is not a score (an integer, INFINITY or -INFINITY)" % (value,))
    return word.lstrip("+")


def duration(value):
    """90 -> '90s'; '10s', '1min', '500ms' pass unchanged."""
    if isinstance(value, bool):
        raise CibError("%r is not a duration" % (value,))
    if isinstance(value, (int, float)):
        return "%gs" % value
    word = str(value).strip()
    if not re.match(r"[0-9]+(\.[0-9]+)?\s*(ms|msec|us|usec|s|sec|m|min|h|hr)?\Z", word):
        raise CibError("%r is not a duration (e.g. 30s, 2min, 500ms)" % (value,))
    return word if not word.isdigit() else word + "s"


def seconds(value):
    """A duration as seconds (float), for comparing timeouts."""
    return parse_duration(duration(value))


# -- attribute sets ---------------------------------------------------------------------
def nvset(tag, set_id, items, ids, prefix=None, score_value=None):
    """<tag id=set_id><nvpair id=prefix-name name value/>...</tag> (items: dict or pairs)."""
    element = etree.Element(tag, id=set_id)
    if score_value is not None:
        element.set("score", score(score_value))
    pairs = items.items() if hasattr(items, "items") else items
    for name, value in pairs:
        etree.SubElement(element, "nvpair", id=ids.new(prefix or set_id, name), name=str(name),
                         value=text(value))
    return element


def cluster_properties(properties, ids, set_id="cib-bootstrap-options"):
    return nvset("cluster_property_set", ids.new(set_id), properties, ids)


def defaults(tag, items, ids):
    """<rsc_defaults>/<op_defaults> holding one meta_attributes set."""
    element = etree.Element(tag)
    element.append(nvset("meta_attributes", ids.new(tag, "meta_attributes"), items, ids))
    return element


# -- resources --------------------------------------------------------------------------
class Op:
    """One <op>: name, interval, timeout and the rest; check_level -> OCF_CHECK_LEVEL."""

    __slots__ = ("name", "interval", "timeout", "role", "on_fail", "start_delay",
                 "check_level", "extra")

    def __init__(self, name, interval=0, timeout=None, role=None, on_fail=None,
                 start_delay=None, check_level=None, **extra):
        self.name = name
        self.interval = duration(interval)
        self.timeout = None if timeout is None else duration(timeout)
        self.role = role
        self.on_fail = on_fail
        self.start_delay = None if start_delay is None else duration(start_delay)
        self.check_level = check_level
        self.extra = {k.replace("_", "-"): v for k, v in extra.items()}

    def element(self, rsc_id, ids):
        op_id = ids.new(rsc_id, self.name, "interval", self.interval)
        element = etree.Element("op", id=op_id, name=self.name, interval=self.interval)
        for attr, value in (("timeout", self.timeout), ("role", self.role),
                            ("on-fail", self.on_fail), ("start-delay", self.start_delay)):
            if value is not None:
                element.set(attr, text(value))
        for attr, value in sorted(self.extra.items()):
            element.set(attr, text(value))
        if self.check_level is not None:
            element.append(nvset("instance_attributes", ids.new(op_id, "instance_attributes"),
                                 {"OCF_CHECK_LEVEL": int(self.check_level)}, ids))
        return element

    def __repr__(self):
        return "Op(%s, %s, %s)" % (self.name, self.interval, self.timeout)


def parse_agent(agent):
    """'ocf:hasf:VirtualMachine' -> ('ocf', 'hasf', 'VirtualMachine');
    'stonith:fence_x' / 'fence_x' / 'external/hasf-x' -> ('stonith', None, ...)."""
    parts = agent.split(":")
    if len(parts) == 3 and parts[0] == "ocf" and all(parts):
        return parts[0], parts[1], parts[2]
    if len(parts) == 2 and all(parts):
        if parts[0] == "ocf":
            raise CibError("agent %r: class ocf needs a provider (ocf:PROVIDER:TYPE)" % agent)
        return parts[0], None, parts[1]
    if len(parts) == 1 and (agent.startswith("fence_") or agent.startswith("external/")):
        return "stonith", None, agent
    raise CibError("agent %r is not CLASS:PROVIDER:TYPE, CLASS:TYPE, fence_* or external/*"
                   % agent)


def agent_name(standard, provider, kind):
    return ":".join(p for p in (standard, provider, kind) if p)


def primitive(rsc_id, agent, ids, params=None, meta=None, ops=(), utilization=None):
    """<primitive> of any class with instance/meta attributes, utilization and ops."""
    standard, provider, kind = parse_agent(agent) if isinstance(agent, str) else agent
    element = etree.Element("primitive", id=rsc_id)
    element.set("class", standard)
    if provider:
        element.set("provider", provider)
    element.set("type", kind)
    if params:
        element.append(nvset("instance_attributes", ids.new(rsc_id, "instance_attributes"),
                             params, ids))
    if meta:
        element.append(nvset("meta_attributes", ids.new(rsc_id, "meta_attributes"), meta, ids))
    if utilization:
        element.append(nvset("utilization", ids.new(rsc_id, "utilization"), utilization, ids))
    if ops:
        operations = etree.SubElement(element, "operations")
        for op in ops:
            operations.append(op.element(rsc_id, ids))
    return element


def fence_device(rsc_id, agent, ids, params=None, host_list=None, host_map=None, meta=None,
                 ops=()):
    """A stonith primitive (`fence_hasf_*` or `external/hasf-*`) with pcmk_host_map/list.

    host_map: {node: port} -> pcmk_host_map="node1:port1;node2:port2"."""
    params = dict(params or {})
    if host_map:
        params["pcmk_host_map"] = ";".join("%s:%s" % (n, p) for n, p in host_map.items())
    if host_list:
        params["pcmk_host_list"] = " ".join(host_list)
    if agent.startswith(("fence_", "external/")):
        agent = "stonith:" + agent
    return primitive(rsc_id, agent, ids, params, meta, ops)


def group(group_id, members, ids, meta=None):
    element = etree.Element("group", id=group_id)
    if meta:
        element.append(nvset("meta_attributes", ids.new(group_id, "meta_attributes"), meta, ids))
    for member in members:
        element.append(member)
    return element


def clone(child, ids, meta=None, clone_id=None):
    """<clone id=<child>-clone> around a primitive or group (notify, interleave, clone-max...)."""
    clone_id = clone_id or ids.new(child.get("id"), "clone")
    element = etree.Element("clone", id=clone_id)
    if meta:
        element.append(nvset("meta_attributes", ids.new(clone_id, "meta_attributes"), meta, ids))
    element.append(child)
    return element


# -- fencing topology --------------------------------------------------------------------
def fencing_level(target, index, devices, ids):
    return etree.Element("fencing-level", id=ids.new("fl", target, index), target=target,
                         index=str(int(index)), devices=",".join(devices))


# -- constraints -------------------------------------------------------------------------
def set_present(element, *pairs):
    """Set each (attribute, value) whose value is given; optional attributes stay absent."""
    for name, value in pairs:
        if value:
            element.set(name, value)
    return element


def location(rsc, node, score_value, ids, role=None, discovery=None):
    """rsc_location, node+score form: location-<rsc>-<node>-<score>."""
    value = score(score_value)
    element = etree.Element("rsc_location", id=ids.new("location", rsc, node, value),
                            rsc=rsc, node=node, score=value)
    return set_present(element, ("role", role), ("resource-discovery", discovery))


class Expr:
    """One rule expression: Expr('#uname', 'eq', 'node1')."""

    __slots__ = ("attribute", "operation", "value")

    def __init__(self, attribute, operation, value=None):
        if operation not in RULE_OPS:
            raise CibError("rule operation %r is not one of %s" % (operation, ", ".join(RULE_OPS)))
        self.attribute, self.operation, self.value = attribute, operation, value


def location_rule(rsc, score_value, expressions, ids, boolean_op="and", role=None):
    """rsc_location, rule form: <rule score boolean-op><expression .../></rule>."""
    loc_id = ids.new("location", rsc)
    element = etree.Element("rsc_location", id=loc_id, rsc=rsc)
    if role:
        element.set("role", role)
    rule_id = ids.new(loc_id, "rule")
    rule = etree.SubElement(element, "rule", id=rule_id, score=score(score_value))
    rule.set("boolean-op", boolean_op)
    for expr in expressions:
        item = etree.SubElement(rule, "expression", id=ids.new(rule_id, "expr"),
                                attribute=expr.attribute, operation=expr.operation)
        if expr.value is not None:
            item.set("value", text(expr.value))
    return element


def order(first, then, ids, kind="Mandatory", symmetrical=None, first_action=None,
          then_action=None):
    """rsc_order with kind (never the deprecated score)."""
    if kind not in ORDER_KINDS:
        raise CibError("order kind %r is not one of %s" % (kind, ", ".join(ORDER_KINDS)))
    element = etree.Element("rsc_order", id=ids.new("order", first, then, kind.lower()))
    set_present(element, ("first", first), ("first-action", first_action), ("then", then),
                ("then-action", then_action), ("kind", kind))
    if symmetrical is not None:
        element.set("symmetrical", text(bool(symmetrical)))
    return element


def colocation(rsc, with_rsc, score_value, ids, rsc_role=None, with_rsc_role=None):
    value = score(score_value)
    element = etree.Element("rsc_colocation", id=ids.new("colocation", rsc, with_rsc, value),
                            rsc=rsc)
    return set_present(element, ("with-rsc", with_rsc), ("score", value), ("rsc-role", rsc_role),
                       ("with-rsc-role", with_rsc_role))


class ResourceSet:
    """<resource_set> of a set constraint."""

    __slots__ = ("resources", "sequential", "require_all", "action", "role")

    def __init__(self, resources, sequential=None, require_all=None, action=None, role=None):
        self.resources = list(resources)
        self.sequential, self.require_all = sequential, require_all
        self.action, self.role = action, role

    def element(self, owner_id, ids):
        element = etree.Element("resource_set", id=ids.new(owner_id, "set"))
        for attr, value in (("sequential", self.sequential), ("require-all", self.require_all),
                            ("action", self.action), ("role", self.role)):
            if value is not None:
                element.set(attr, text(value))
        for rsc in self.resources:
            etree.SubElement(element, "resource_ref", id=rsc)
        return element


def _set_id(prefix, sets):
    return join(prefix, *[r for s in sets for r in s.resources])


def order_sets(sets, ids, kind="Mandatory", symmetrical=None):
    """rsc_order of resource sets: each set after the one before it."""
    if kind not in ORDER_KINDS:
        raise CibError("order kind %r is not one of %s" % (kind, ", ".join(ORDER_KINDS)))
    order_id = ids.new(_set_id("order_set", sets))
    element = etree.Element("rsc_order", id=order_id, kind=kind)
    if symmetrical is not None:
        element.set("symmetrical", text(bool(symmetrical)))
    for item in sets:
        element.append(item.element(order_id, ids))
    return element


def colocation_sets(sets, score_value, ids):
    colo_id = ids.new(_set_id("colocation_set", sets))
    element = etree.Element("rsc_colocation", id=colo_id, score=score(score_value))
    for item in sets:
        element.append(item.element(colo_id, ids))
    return element


# -- the document ------------------------------------------------------------------------
class Cib:
    """One CIB document (configuration, no status) and its id provider."""

    def __init__(self, schema=None, ids=None):
        if schema is None:
            from hasf.cib.tools import newest_schema

            schema = newest_schema()
        self.root = etree.Element("cib")
        self.root.set("validate-with", schema)
        for attr, value in (("admin_epoch", "0"), ("epoch", "1"), ("num_updates", "0")):
            self.root.set(attr, value)
        self.configuration = etree.SubElement(self.root, "configuration")
        for name in ("crm_config", "nodes", "resources", "constraints"):
            etree.SubElement(self.configuration, name)
        self.ids = ids or IdProvider()

    def section(self, name):
        """The <configuration> child `name`, created in canonical order when missing."""
        element = self.configuration.find(name)
        if element is None:
            element = etree.Element(name)
            position = SECTION_ORDER.index(name)
            for child in self.configuration:
                if child.tag in SECTION_ORDER and SECTION_ORDER.index(child.tag) > position:
                    child.addprevious(element)
                    break
            else:
                self.configuration.append(element)
        return element

    def add(self, element):
        """Put a builder's element where it belongs; returns it."""
        if element.tag in ("rsc_defaults", "op_defaults"):
            self.configuration.replace(self.section(element.tag), element)
            return element
        self.section(SECTIONS[element.tag]).append(element)
        return element

    def add_node(self, uname, node_id):
        element = etree.Element("node", id=str(node_id), uname=uname)
        self.add(element)
        return element

    def resource_ids(self):
        return [el.get("id") for el in self.section("resources").iter(
            "primitive", "group", "clone")]

    def tostring(self):
        return serialize(self.root)


def serialize(element):
    return etree.tostring(element, pretty_print=True, encoding="unicode")


def _parser():
    # CIBs and tool output are data: no entity expansion, no network, no DTD loading
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           remove_blank_text=True)


def parse_text(text):
    """An lxml root from XML text (str or bytes)."""
    return etree.fromstring(text.encode() if isinstance(text, str) else text, _parser())


def parse_file(path):
    """An lxml root from an XML file; CibError when it is not XML."""
    try:
        return etree.parse(path, _parser()).getroot()
    except etree.XMLSyntaxError as exc:
        raise CibError("%s is not XML: %s" % (path, exc)) from None
