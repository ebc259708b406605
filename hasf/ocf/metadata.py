"""Meta-data XML, derived from the agent declaration (never joined from strings).

Built with hasf.xmlwriter (a real tree, every value escaped), because
meta-data is printed by a freshly exec'd process and importing ElementTree or
lxml would cost more than the rest of the run.

OCF 1.1 (parameters marked `reloadable`, the `reload-agent` action) is read
by Pacemaker >= 2.1, pcs 0.11 (which checks it against its own OCF 1.1
RelaxNG) and crmsh.  ocf-tester still validates against resource-agents'
ra-api-1.dtd, which predates OCF 1.1: the document's internal DTD subset
declares the two OCF 1.1 additions hasf uses (internal declarations come
first and win), so the same output passes ocf-tester too.
"""

from hasf.xmlwriter import Element

OCF_API_VERSION = "1.1"
#: ra-api-1.dtd's action names plus OCF 1.1's reload-agent
ACTION_NAMES = ("start", "stop", "recover", "monitor", "restart", "migrate_to", "migrate_from",
                "promote", "demote", "notify", "status", "reload", "reload-agent", "meta-data",
                "usage", "methods", "validate-all")
DTD = ('<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd" [\n'
       '<!ATTLIST parameter reloadable (1|0) #IMPLIED>\n'
       '<!ATTLIST action name (%s) #REQUIRED>\n]>' % "|".join(ACTION_NAMES))


def _text(parent, tag, text):
    return parent.add(tag, {"lang": "en"}, text)


def _parameter(parent, param, reloadable):
    attrs = {"name": param.name, "unique": "1" if param.unique else "0",
             "required": "1" if param.required else "0"}
    if reloadable:
        attrs["reloadable"] = "1"
    element = parent.add("parameter", attrs)
    _text(element, "longdesc", param.describe())
    _text(element, "shortdesc", param.shortdesc)
    content = {"type": param.kind.ocf_type}
    default = param.default_text()
    if default is not None:
        content["default"] = default
    element.add("content", content)


def build(agent):
    """The meta-data document of an agent class, as text."""
    root = Element("resource-agent", {"name": agent.name, "version": agent.version})
    root.add("version", text=OCF_API_VERSION)
    _text(root, "longdesc", agent.longdesc)
    _text(root, "shortdesc", agent.shortdesc)
    parameters = root.add("parameters")
    for param in agent.parameters:
        _parameter(parameters, param, agent.is_reloadable(param))
    actions = root.add("actions")
    for action in agent.advertised_actions():
        actions.add("action", action.attributes())
    return '<?xml version="1.0"?>\n%s\n%s' % (DTD, root.serialize())
