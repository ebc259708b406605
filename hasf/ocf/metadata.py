"""Meta-data XML, derived from the agent declaration (never joined from strings).

Built with hasf.xmlwriter (a real tree, every value escaped), because
meta-data is printed by a freshly exec'd process and importing ElementTree or
lxml would cost more than the rest of the run.  The output satisfies both checkers
users run: ocf-tester's ra-api-1.dtd and resource-agents' metadata.rng.
"""

from hasf.xmlwriter import Element

OCF_API_VERSION = "1.1"
DTD = '<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">'


def _text(parent, tag, text):
    return parent.add(tag, {"lang": "en"}, text)


def _parameter(parent, param):
    attrs = {"name": param.name, "unique": "1" if param.unique else "0",
             "required": "1" if param.required else "0"}
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
        _parameter(parameters, param)
    actions = root.add("actions")
    for action in agent.advertised_actions():
        actions.add("action", action.attributes())
    return '<?xml version="1.0"?>\n%s\n%s' % (DTD, root.serialize())
