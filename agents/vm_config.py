"""The domain XML file (`config`): read it and learn who the domain is.

Only the identity is needed by the agent itself (name, UUID, domain type);
libvirt parses and checks the rest when it defines or creates the domain.
pyexpat (part of CPython, ~1 ms to import) reads just that, so monitors and
probes never pay for lxml.
"""

from hasf.ocf.errors import NotConfigured, PermissionDenied


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


def read(path):
    """The text of the config file; ConfigUnavailable / PermissionDenied with a clear reason."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(4 * 1024 * 1024 + 1)
    except FileNotFoundError:
        raise ConfigUnavailable("config file %s does not exist" % path) from None
    except PermissionError:
        raise PermissionDenied("config file %s is not readable" % path) from None
    except OSError as exc:
        raise ConfigUnavailable("cannot read config file %s: %s" % (path, exc.strerror)) from None
    if len(data) > 4 * 1024 * 1024:
        raise NotConfigured("config file %s is larger than 4 MiB: not a domain XML" % path)
    return data


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


def load(path):
    """(xml text, Identity) of the config file at path."""
    data = read(path)
    ident = identity(data, "config file %s" % path)
    return data.decode("utf-8", "replace"), ident
