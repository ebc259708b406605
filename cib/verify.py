"""Checking generated XML with Pacemaker's own tools (never re-implemented).

- `validate(root)`: Relax-NG validation of a whole CIB with `xmllint` against
  `/usr/share/pacemaker/<validate-with>.rng`.
- `validate_fragment(element)`: a fragment (a constraint, a primitive, ...)
  cannot be validated alone -- its IDREFs must resolve -- so it is placed in
  its section of a copy of a base CIB (the user's, or a minimal one with
  stand-in primitives for the ids it references) and that is validated.
- `verify(root)`: `crm_verify` needs a realistic status section (an empty one
  makes every node "unclean" and warns about fencing), so the nodes are
  brought up first with `crm_simulate -u ...` and the result is verified.
  With settle=True the start-up transition is run too (`-S`): every resource
  is then also seen started.  That costs time with thousands of resources
  (crm_simulate -S of 1,000 VMs takes minutes), so the default (settle=None)
  settles CIBs of up to SETTLE_LIMIT primitives and only brings the nodes up
  for bigger ones; the verdict says which was done.
"""

import copy

from lxml import etree

from hasf.cib.build import SECTIONS, Cib, serialize
from hasf.cib.errors import ToolError
from hasf.cib.tools import Scratch, Tools, schema_path

IDREF_ATTRS = ("rsc", "with-rsc", "first", "then")
SETTLE_LIMIT = 300


class Verdict:
    """The outcome of a check: ok, and what the tools said."""

    def __init__(self, ok, messages, what):
        self.ok, self.messages, self.what = ok, messages.strip(), what

    def __bool__(self):
        return self.ok

    def __repr__(self):
        return "Verdict(%s, %r)" % (self.ok, self.messages[:200])


def _clean(messages, path, label):
    return messages.replace(path, label)


def validate(root, tools=None, schema=None):
    """xmllint --relaxng against the document's validate-with (or `schema`)."""
    tools = tools or Tools()
    schema = schema or root.get("validate-with")
    rng = schema_path(schema)
    with Scratch() as scratch:
        path = scratch.write("cib.xml", serialize(root))
        rc, messages = tools.xmllint(path, rng)
    text = _clean(messages, path, "cib.xml")
    if rc == 0:
        text = ""
    return Verdict(rc == 0, text, "schema %s" % schema)


def fragment_context(element, base=None, schema=None):
    """A CIB holding `element` in its section: `base` (an lxml cib root) or a minimal one
    with stand-in primitives for every resource the fragment references."""
    if base is not None:
        root = copy.deepcopy(base)
        if root.find("status") is not None:
            root.remove(root.find("status"))
    else:
        cib = Cib(schema)
        root = cib.root
    ids = {el.get("id") for el in root.iter() if el.get("id")}
    inner = {el.get("id") for el in element.iter() if el.get("id") and el.tag != "resource_ref"}
    refs = []
    for item in element.iter():
        for attr in IDREF_ATTRS:
            if item.get(attr):
                refs.append(item.get(attr))
        if item.tag == "resource_ref":
            refs.append(item.get("id"))
    resources = root.find("configuration/resources")
    stubs = []
    for ref in dict.fromkeys(refs):
        if ref not in ids and ref not in inner:
            stub = etree.SubElement(resources, "primitive", id=ref, type="Dummy",
                                    provider="pacemaker")
            stub.set("class", "ocf")
            stubs.append(ref)
    tag = element.tag
    section_name = SECTIONS.get(tag, tag)
    configuration = root.find("configuration")
    if tag in ("rsc_defaults", "op_defaults", "crm_config", "resources", "constraints",
               "fencing-topology", "nodes"):
        existing = configuration.find(tag)
        if existing is not None:
            configuration.remove(existing)
        configuration.append(copy.deepcopy(element))
    else:
        section = configuration.find(section_name)
        if section is None:
            section = etree.SubElement(configuration, section_name)
        section.append(copy.deepcopy(element))
    return root, stubs


def validate_fragment(element, base=None, schema=None, tools=None):
    root, stubs = fragment_context(element, base, schema)
    verdict = validate(root, tools)
    if stubs:
        verdict.what += " (stand-ins for %s)" % ", ".join(stubs)
    return verdict


def has_quorum(up, total):
    """Votequorum's answer for `up` of `total` nodes (two_node: one of two is enough)."""
    return up * 2 > total or (total == 2 and up >= 1)


def node_names(root):
    return [n.get("uname") for n in root.iterfind("configuration/nodes/node")]


def with_status(root, tools=None, nodes=None, settle=False):
    """The CIB after `crm_simulate -u <every node>` (text): a realistic status section."""
    tools = tools or Tools()
    nodes = nodes or node_names(root)
    with Scratch() as scratch:
        path = scratch.write("in.xml", serialize(root))
        tools.simulate(path, scratch.file("up.xml"), up=nodes, execute=settle, quorum=True)
        return scratch.read("up.xml")


def verify(root, tools=None, settle=None):
    """crm_verify on the configuration with every node up; Verdict (ok only with rc 0)."""
    tools = tools or Tools()
    if settle is None:
        settle = sum(1 for _ in root.iter("primitive")) <= SETTLE_LIMIT
    how = "crm_simulate -S -u" if settle else "crm_simulate -u"
    try:
        text = with_status(root, tools, settle=settle)
    except ToolError as exc:
        return Verdict(False, str(exc), "%s (bringing nodes up)" % how)
    with Scratch() as scratch:
        path = scratch.write("up.xml", text)
        result = tools.verify(path)
    messages = _clean(result.stderr + result.stdout, path, "cib.xml")
    return Verdict(result.rc == 0, "" if result.rc == 0 else messages,
                   "crm_verify (rc %d) after %s" % (result.rc, how))
