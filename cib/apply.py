"""Declarative, idempotent apply: diff the current CIB against the wanted one, patch.

Like linux-system-roles' ha_cluster: query the CIB (`cibadmin --query`),
build the wanted CIB from a copy of it -- the sections hasf owns replaced,
everything else (nodes, status, other property sets, properties the cluster
writes itself such as dc-version) kept -- check it (schema + crm_verify), ask
`crm_diff --no-version` for the difference, and `cibadmin --patch` only when
there is one.  Applying the same spec again finds no difference and writes
nothing: "unchanged".

Owned sections: resources, constraints, rsc_defaults, op_defaults and
fencing-topology are replaced wholesale (resources not in the spec are
removed, as in any declarative tool); in crm_config the spec's properties
are set inside their property set and every other property is left alone.
"""

import copy
import os

from lxml import etree

from hasf.cib import verify
from hasf.cib.build import parse_text, serialize
from hasf.cib.errors import CibError, SpecError, ToolError
from hasf.cib.files import create_private
from hasf.cib.tools import Scratch, Tools

OWNED = ("rsc_defaults", "op_defaults", "resources", "constraints", "fencing-topology")
ORDER = ("crm_config", "rsc_defaults", "op_defaults", "nodes", "resources", "constraints",
         "fencing-topology")


class Outcome:
    def __init__(self, changed, diff, target, warnings=()):
        self.changed, self.diff, self.target = changed, diff, target
        self.warnings = list(warnings)

    def describe(self):
        if not self.changed:
            return "unchanged: %s already matches the spec" % self.target
        return "applied to %s" % self.target


def _insert_section(configuration, element):
    position = ORDER.index(element.tag)
    for child in configuration:
        if child.tag in ORDER and ORDER.index(child.tag) > position:
            child.addprevious(element)
            return
    configuration.append(element)


def _child(parent, tag, attribute, value):
    """parent's first <tag> whose attribute equals value (no XPath built from a name)."""
    for element in parent.iterchildren(tag):
        if element.get(attribute) == value:
            return element
    return None


def _merge_properties(current_config, wanted_config):
    crm_config = current_config.find("crm_config")
    taken = {el.get("id") for el in current_config.getroottree().iter() if el.get("id")}
    for wanted_set in wanted_config.findall("crm_config/cluster_property_set"):
        have = _child(crm_config, "cluster_property_set", "id", wanted_set.get("id"))
        if have is None:
            crm_config.append(copy.deepcopy(wanted_set))
            continue
        for pair in wanted_set.findall("nvpair"):
            existing = _child(have, "nvpair", "name", pair.get("name"))
            if existing is not None:
                existing.set("value", pair.get("value"))
            else:
                new = copy.deepcopy(pair)
                base, counter = new.get("id"), 0
                while new.get("id") in taken:
                    counter += 1
                    new.set("id", "%s-%d" % (base, counter))
                taken.add(new.get("id"))
                have.append(new)


def wanted(current_root, generated_root):
    """(wanted root, warnings): the current CIB with hasf's sections from generated_root."""
    root = copy.deepcopy(current_root)
    configuration = root.find("configuration")
    generated = generated_root.find("configuration")
    warnings = []
    for name in OWNED:
        have = configuration.find(name)
        new = generated.find(name)
        if have is not None:
            configuration.remove(have)
        if new is not None:
            _insert_section(configuration, copy.deepcopy(new))
        elif name in ("resources", "constraints"):
            _insert_section(configuration, etree.Element(name))
    _merge_properties(configuration, generated)
    kept = {el.get("id") for el in generated.find("resources")}
    for item in current_root.find("configuration/resources") if current_root.find(
            "configuration/resources") is not None else ():
        if item.get("id") not in kept:
            warnings.append("removes %s %s: it is not in the spec" % (item.tag, item.get("id")))
    nodes = configuration.find("nodes")
    live = {n.get("uname") for n in nodes.findall("node")}
    if not live:
        configuration.replace(nodes, copy.deepcopy(generated.find("nodes")))
    else:
        for node in generated.findall("nodes/node"):
            if node.get("uname") not in live:
                warnings.append("node %s of the spec is not (yet) in the CIB's nodes"
                                % node.get("uname"))
    return root, warnings


def _ensure_file(tools, schema, scratch, dry_run):
    """A file CIB that does not exist yet starts as `cibadmin --empty` (in a scratch
    copy on a dry run, so a dry run never writes)."""
    if not tools.cib_file or os.path.exists(tools.cib_file):
        return tools
    empty = tools.local(["cibadmin", "--empty", schema]).stdout
    if dry_run:
        return Tools(tools.prefix, scratch.write("empty.xml", empty), tools.env, tools.timeout)
    create_private(tools.cib_file, empty)   # it will hold the fence passwords: 0600
    return tools


def apply(generated_root, tools=None, check=True, dry_run=False):
    """Make the CIB match generated_root; Outcome(changed=False) when it already did."""
    tools = tools or Tools()
    with Scratch() as scratch:
        return _apply(generated_root, tools, check, dry_run, scratch)


def _apply(generated_root, tools, check, dry_run, scratch):
    target = tools.describe()
    tools = _ensure_file(tools, generated_root.get("validate-with"), scratch, dry_run)
    current_text = tools.query()
    try:
        current = parse_text(current_text)
    except etree.XMLSyntaxError as exc:
        raise CibError("cibadmin --query gave no CIB: %s" % exc) from None
    root, warnings = wanted(current, generated_root)
    if check:
        problems = []
        verdict = verify.validate(root, tools)
        if not verdict:
            problems.append("%s: %s" % (verdict.what, verdict.messages))
        else:
            config_only = copy.deepcopy(root)
            status = config_only.find("status")
            if status is not None:
                config_only.remove(status)
            verdict = verify.verify(config_only, tools)
            if not verdict:
                problems.append("%s: %s" % (verdict.what, verdict.messages))
        if problems:
            raise SpecError("the configuration to apply", problems)
    old = scratch.write("current.xml", current_text)
    new = scratch.write("wanted.xml", serialize(root))
    diff = tools.diff(old, new)
    if diff is None:
        return Outcome(False, None, target, warnings)
    if not dry_run:
        try:
            tools.patch(diff)
        except ToolError as exc:
            raise CibError("cibadmin --patch on %s failed, the CIB is unchanged: %s"
                           % (target, exc)) from None
    return Outcome(True, diff, target, warnings)
