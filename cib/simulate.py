"""The seed's crash test, offline: all nodes up; a node fails; it returns.

Each step is one `crm_simulate -S` run on the previous step's saved output
(`-O`); where resources run afterwards is Pacemaker's own reading of that
output (`crm_mon --output-as=xml` with `CIB_file=`), and fenced nodes come
from crm_simulate's XML output (`<fencing_action target=...>`).
"""


import os

from hasf.cib.build import parse_text, serialize
from hasf.cib.errors import CibError, ToolError
from hasf.cib.tools import Scratch, Tools
from hasf.cib.verify import has_quorum, node_names


class Step:
    def __init__(self, label, up=(), down=(), fail=()):
        self.label, self.up, self.down, self.fail = label, list(up), list(down), list(fail)
        self.fenced = []
        self.placement = {}     # resource (top-level id) -> sorted node names
        self.actions = []       # crm_simulate's transition summary lines
        self.quorum = None      # whether the surviving partition had quorum (votequorum rules)
        self.errors = []        # why the transition did not complete, if it did not


def default_steps(nodes, victim):
    return [Step("all nodes up", up=nodes), Step("%s fails" % victim, fail=[victim]),
            Step("%s returns" % victim, up=[victim])]


def placement(status_xml):
    """{top-level resource id: [nodes where it runs]} from crm_mon XML."""
    root = parse_text(status_xml)
    out = {}
    resources = root.find("resources")
    if resources is None:
        return out
    for item in resources:
        rid = item.get("id")
        nodes = set()
        for rsc in item.iter("resource"):
            if rsc.get("role") in ("Started", "Promoted", "Unpromoted", "Master", "Slave") \
                    and rsc.get("active") == "true":
                nodes.update(n.get("name") for n in rsc.findall("node"))
        out[rid] = sorted(nodes)
    return out


def _errors(sim_xml):
    try:
        root = parse_text(sim_xml)
    except Exception:  # noqa: BLE001 -- no XML: the caller falls back to the summary
        return []
    return [e.text.strip() for e in root.iter("error") if e.text]


def _fenced(sim_xml):
    root = parse_text(sim_xml)
    return sorted({f.get("target") for f in root.iter("fencing_action")})


def _summary(sim_xml):
    """The transition summary ("Fence (reboot) node1", "move vm1 node1 -> node2", ...)."""
    root = parse_text(sim_xml)
    lines = []
    for item in root.iter("node_action", "rsc_action"):
        if item.getparent().tag == "transition":
            continue
        if item.tag == "node_action":
            lines.append("%s %s" % (item.get("task"), item.get("node")))
        elif item.get("source"):
            lines.append("%s %s %s -> %s" % (item.get("action"), item.get("resource"),
                                             item.get("source"), item.get("dest")))
        else:
            lines.append("%s %s %s" % (item.get("action"), item.get("resource"),
                                       item.get("node") or ""))
    return lines


def simulate(root, tools=None, steps=None, victim=None):
    """Run the steps; returns them with fenced nodes and placements filled in."""
    tools = tools or Tools()
    nodes = node_names(root)
    if not nodes:
        raise CibError("the CIB has no nodes to simulate")
    victim = victim or nodes[0]
    if victim not in nodes:
        raise CibError("cannot fail %r: not a node of this CIB (%s)" % (victim, ", ".join(nodes)))
    steps = steps or default_steps(nodes, victim)
    with Scratch() as scratch:
        current = scratch.write("step0.xml", serialize(root))
        up = set()
        for index, step in enumerate(steps, 1):
            out = scratch.file("step%d.xml" % index)
            up = (up | set(step.up)) - set(step.down) - set(step.fail)
            step.quorum = has_quorum(len(up), len(nodes))
            argv = ["crm_simulate", "-S", "--output-as=xml", "-x", current, "-O", out,
                    "--quorum=%s" % ("true" if step.quorum else "false")]
            for flag, names in (("-u", step.up), ("-d", step.down), ("-f", step.fail)):
                for name in names:
                    argv += [flag, name]
            result = tools.local(argv, ok=(0, 1))
            if result.rc != 0:
                # e.g. a partition without quorum that cannot fence: Pacemaker stops the
                # transition -- an outcome to show, not a tool failure
                step.errors = _errors(result.stdout) or [result.summary()]
                if not os.path.exists(out):
                    raise ToolError("crm_simulate (%s): %s" % (step.label, "; ".join(
                        step.errors)), result)
            step.fenced = _fenced(result.stdout)
            step.actions = _summary(result.stdout)
            step.placement = placement(tools.status(out))
            current = out
    return steps


def table(steps):
    """A short text table: one row per resource, one column per step, plus fenced nodes."""
    resources = list(dict.fromkeys(r for s in steps for r in s.placement))
    header = ["resource"] + [s.label for s in steps]
    rows = [["fenced"] + [", ".join(s.fenced) or "-" for s in steps],
            ["quorum"] + ["yes" if s.quorum else "no" for s in steps]]
    if any(s.errors for s in steps):
        rows.append(["transition"] + ["INCOMPLETE" if s.errors else "ok" for s in steps])
    for rid in resources:
        rows.append([rid] + [", ".join(s.placement.get(rid, [])) or "stopped" for s in steps])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = "  ".join("%-*s" % (w, h) for w, h in zip(widths, header)).rstrip()
    out = [line, "  ".join("-" * w for w in widths)]
    for row in rows:
        out.append("  ".join("%-*s" % (w, c) for w, c in zip(widths, row)).rstrip())
    return "\n".join(out)
