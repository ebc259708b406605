"""The domain XML file (`config`): read it and learn who the domain is.

Only the identity is needed by the agent itself (name, UUID, domain type);
libvirt parses and checks the rest when it defines or creates the domain.
pyexpat (part of CPython, ~1 ms to import) reads just that, so monitors and
probes never pay for lxml.  The file itself is read by vm_store in a bounded
child: it lives on the shared config store, which may hang.
"""

from hasf.ocf.errors import NotConfigured


class ConfigUnavailable(NotConfigured):
    """The config file does not exist or cannot be read (shared storage gone, typo)."""


class Identity:
    """Who a domain is: its name, and UUID and type when known."""

    __slots__ = ("name", "uuid", "domain_type")

    def __init__(self, name, uuid=None, domain_type=None):
        self.name = name
        self.uuid = uuid or None
        self.domain_type = domain_type or None

    def __repr__(self):
        return "Identity(%r, uuid=%r, type=%r)" % (self.name, self.uuid, self.domain_type)


def identity(data, origin="config"):
    """Identity from domain XML bytes/str; NotConfigured when it is not a domain XML."""
    from xml.parsers import expat

    found = {"name": [], "uuid": []}
    stack = []
    root = {}

    def start(tag, attrs):
        if not stack:
            root["tag"] = tag
            root["type"] = attrs.get("type")
        stack.append(tag)

    def end(_tag):
        stack.pop()

    def text(chars):
        if len(stack) == 2 and stack[1] in found:
            found[stack[1]].append(chars)

    parser = expat.ParserCreate()
    # no external entities, no DTD fetching: a config is data, never a program
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = _refuse_doctype
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise NotConfigured("%s is not well-formed XML: %s" % (origin, exc)) from None
    except ValueError as exc:
        raise NotConfigured("%s: %s" % (origin, exc)) from None
    if root.get("tag") != "domain":
        raise NotConfigured("%s is not a libvirt domain XML (root element <%s>, expected <domain>)"
                            % (origin, root.get("tag")))
    name = "".join(found["name"]).strip()
    if not name:
        raise NotConfigured("%s has no <name> for the domain" % origin)
    return Identity(name, "".join(found["uuid"]).strip(), root.get("type"))


def _refuse_doctype(*_args):
    raise ValueError("a DOCTYPE is not allowed in a domain XML")


def load(path, deadline=None):
    """(xml text, Identity) of the config file at path, read in a bounded child (vm_store):
    ConfigUnavailable when it is not there, StoreUnreadable when the store cannot tell."""
    from hasf.agents import vm_store

    if deadline is None:
        from hasf.deadline import Deadline

        deadline = Deadline(30)
    data = vm_store.read_config(path, deadline)
    ident = identity(data, "config file %s" % path)
    return data.decode("utf-8", "replace"), ident
