"""hasf-cib: generate, check, simulate and apply Pacemaker CIB XML.

The one place that prints and exits; everything else raises.

    hasf-cib build SPEC                 complete CIB (configuration, no status) on stdout
    hasf-cib verify SPEC|CIB            schema + crm_verify (with every node up)
    hasf-cib simulate SPEC|CIB          all up / NODE fails / NODE returns, as a table
    hasf-cib apply SPEC                 diff + patch the live CIB (or --cib-file)
    hasf-cib example [NAME]             print a shipped spec (the seed's demo) to start from
    hasf-cib adopt [CIB]                the hasf spec of a CIB with ClusterLabs' agents
    hasf-cib vm|primitive|fence|location|order|colocation|fencing-level|property|defaults ...
                                        one XML fragment, ready for `cibadmin -C -o SECTION -x`
"""

import argparse
import os
import shlex
import sys

from lxml import etree

from hasf.cib import agents, build
from hasf.cib.build import Op, serialize
from hasf.cib.errors import CibError, Problems, SpecError, ToolError
from hasf.cib.expand import AGENTS, build_spec, ops_for
from hasf.cib.ids import IdProvider, why_invalid
from hasf.cib.unverified import warn_unverified
from hasf.truth import parse_bool
from hasf.cib.tools import Tools, newest_schema, schema_path

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_TOOL = 0, 1, 2, 4
SECTION_OF = {"primitive": "resources", "clone": "resources", "group": "resources",
              "rsc_location": "constraints", "rsc_order": "constraints",
              "rsc_colocation": "constraints", "fencing-level": "fencing-topology",
              "cluster_property_set": "crm_config", "rsc_defaults": "rsc_defaults",
              "op_defaults": "op_defaults"}


class Usage(CibError):
    pass


def _pairs(items, what):
    out = {}
    for item in items or ():
        if "=" not in item:
            raise Usage("%s %r is not NAME=VALUE" % (what, item))
        name, value = item.split("=", 1)
        out[name] = value
    return out


def _catalog(args):
    """One catalog per command, so every agent's meta-data is fetched once."""
    if getattr(args, "_catalog", None) is None:
        args._catalog = agents.AgentCatalog(dirs=args.agents_dir or (), ocf_root=args.ocf_root)
    return args._catalog


def _schema(args):
    if args.schema:
        schema_path(args.schema)      # refuse a schema this Pacemaker does not have
        return args.schema
    return newest_schema()


def _warn(warnings):
    for line in warnings:
        sys.stderr.write("hasf-cib: warning: %s\n" % line)


def _load_cib(args, path):
    """(lxml root, warnings): a spec expanded, or a CIB XML file read as is."""
    with open(path, "rb") as handle:
        head = handle.read(512).lstrip()
    if head.startswith(b"<"):
        root = build.parse_file(path)
        problems = Problems()
        agents.check_names(root, problems)     # before any tool sees the file
        problems.raise_if_any(path)
        warn_unverified(root, problems)
        return root, problems.warnings
    cib, warnings = build_spec(path, _catalog(args), _schema(args), args.strict_agents)
    return cib.root, warnings


def _checked(root, args):
    from hasf.cib import verify

    verdict = verify.validate(root)
    if not verdict:
        raise SpecError("the generated CIB", ["%s: %s" % (verdict.what, verdict.messages)])


# -- whole-CIB commands ---------------------------------------------------------------------
def cmd_build(args):
    root, warnings = _load_cib(args, args.spec)
    if not args.no_validate:
        _checked(root, args)
    _warn(warnings)
    if args.legacy_heartbeat_v2:
        return _legacy(args, root)
    _emit(args, serialize(root))


def _legacy(args, root):
    """LEGACY Heartbeat v2 rendering, checked with xmllint --dtdvalid when a DTD is given."""
    from hasf.cib import legacy
    from hasf.cib.tools import Scratch

    text = legacy.tostring(legacy.render(root))
    dtd = args.dtd or os.environ.get("HASF_CRM_DTD")
    if dtd:
        with Scratch() as scratch:
            path = scratch.write("legacy.xml", text)
            result = Tools().local(["xmllint", "--noout", "--dtdvalid", dtd, path], ok=(0, 3, 4))
        if result.rc != 0:
            raise SpecError("the legacy rendering", ["DTD %s: %s" % (
                dtd, result.stderr.replace(path, "legacy.xml").strip())])
    else:
        _warn(["legacy rendering not checked against a DTD (pass --dtd crm.dtd from "
               "pacemaker's 1.0/1.1 tags or heartbeat 2.0.x)"])
    _emit(args, text)


def cmd_verify(args):
    from hasf.cib import verify

    root, warnings = _load_cib(args, args.source)
    _warn(warnings)
    failed = False
    for verdict in (verify.validate(root), verify.verify(root, settle=args.settle)):
        print("%-4s %s" % ("ok" if verdict else "FAIL", verdict.what))
        if verdict.messages:
            print("     " + verdict.messages.replace("\n", "\n     "))
        failed = failed or not verdict
        if failed:
            break
    return EXIT_PROBLEMS if failed else EXIT_OK


def cmd_simulate(args):
    from hasf.cib import simulate

    root, warnings = _load_cib(args, args.source)
    _warn(warnings)
    steps = simulate.simulate(root, victim=args.fail)
    print(simulate.table(steps))
    if args.actions:
        for step in steps:
            print("\n%s:" % step.label)
            for line in step.actions or ["(nothing to do)"]:
                print("  " + line)


def cmd_apply(args):
    from hasf.cib import apply as applying

    root, warnings = _load_cib(args, args.spec)
    _warn(warnings)
    tools = Tools(prefix=_via(args.via), cib_file=args.cib_file)
    outcome = applying.apply(root, tools, check=not args.no_check, dry_run=args.dry_run)
    _warn(outcome.warnings)
    if args.show_diff and outcome.diff:
        sys.stdout.write(outcome.diff)
    print(("would be " if args.dry_run and outcome.changed else "") + outcome.describe())


def _via(text):
    """--via split like a shell would (never run by one); a bad quote is a usage error."""
    try:
        return shlex.split(text) if text else []
    except ValueError as exc:
        raise Usage("--via %r: %s" % (text, exc)) from None


def cmd_adopt(args):
    """The hasf spec of a CIB with ClusterLabs' agents (hasf.cib.adopt), or its problems."""
    from hasf.cib import adopt, tomlwrite

    tools = Tools(prefix=_via(args.via))
    root = adopt.read(args.cib, tools)
    spec, notes = adopt.adopt(root)
    for note in notes:
        sys.stderr.write("hasf-cib: note: %s\n" % note)
    _emit(args, tomlwrite.dumps(spec, adopt.header(args.cib or tools.describe())))


def examples_dir():
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "examples")


def cmd_example(args):
    """Print a shipped example spec (the seed's demo by default) to start from."""
    names = sorted(f[:-5] for f in os.listdir(examples_dir()) if f.endswith(".toml"))
    if args.name not in names:
        raise Usage("no example %r (there are: %s)" % (args.name, ", ".join(names)))
    with open(os.path.join(examples_dir(), args.name + ".toml")) as handle:
        _emit(args, handle.read())


# -- fragments ------------------------------------------------------------------------------
def _ops(args):
    ops = []
    for text in args.op or ():
        words = text.split()
        if not words:
            raise Usage("--op needs NAME [interval=..] [timeout=..] [OCF_CHECK_LEVEL=..]")
        fields = _pairs(words[1:], "op field")
        level = fields.pop("OCF_CHECK_LEVEL", None)
        if level is not None:
            fields["check_level"] = level
        ops.append(Op(words[0], **{k.replace("-", "_"): v for k, v in fields.items()}))
    return ops


def _check_name(name, what):
    reason = why_invalid(name)
    if reason:
        raise Usage("%s: %s" % (what, reason))


def _agent_info(args, agent):
    return _catalog(args).lookup(*build.parse_agent(agent))


def frag_primitive(args, ids):
    _check_name(args.id, "resource id")
    ids.claim(args.id)
    ops = _ops(args)
    if not ops:
        # like pcs: the start/stop/monitor the agent's meta-data advertises
        info = _agent_info(args, args.agent)
        ops = ops_for(None, info) if info is not None else []
    element = build.primitive(args.id, args.agent, ids, _pairs(args.params, "parameter"),
                              _pairs(args.meta, "meta attribute"), ops)
    return _maybe_clone(args, element, ids)


def _maybe_clone(args, element, ids):
    if args.clone or args.clone_meta:
        meta = {"interleave": True}
        meta.update(_pairs(args.clone_meta, "clone meta attribute"))
        return build.clone(element, ids, meta)
    return element


def frag_vm(args, ids):
    _check_name(args.name, "VM name")
    ids.claim(args.name)
    role = AGENTS["vm"]
    params = role.map(config=args.config, hypervisor=args.hypervisor)
    params.update(_pairs(args.params, "parameter"))
    meta = _pairs(args.meta, "meta attribute")
    agent = args.agent or role.agent
    ops = ops_for(role, _agent_info(args, agent), monitor=args.monitor,
                  migrate=meta.get("allow-migrate", "false") == "true")
    return build.primitive(args.name, agent, ids, params, meta, ops)


def frag_fence(args, ids):
    _check_name(args.id, "fence device id")
    ids.claim(args.id)
    host_map = None
    if args.host_map:
        host_map = dict(item.split(":", 1) for item in args.host_map.split(";") if item)
    return build.fence_device(args.id, args.agent, ids, _pairs(args.params, "parameter"),
                              host_list=args.hosts.split(",") if args.hosts else None,
                              host_map=host_map, ops=[Op("monitor", "60s")])


def frag_location(args, ids):
    if args.rule:
        score_text, _, rest = args.rule.partition(":")
        words = rest.split()
        exprs = []
        for index in range(0, len(words), 3):
            chunk = words[index:index + 3]
            if len(chunk) == 2 and chunk[1] in ("defined", "not_defined"):
                exprs.append(build.Expr(chunk[0], chunk[1]))
            elif len(chunk) == 3:
                exprs.append(build.Expr(*chunk))
            else:
                raise Usage("--rule is 'SCORE: ATTR OP VALUE [ATTR OP VALUE ...]'")
        return build.location_rule(args.rsc, score_text.strip(), exprs, ids,
                                   boolean_op=args.boolean_op, role=args.role)
    if not args.node or args.score is None:
        raise Usage("location needs RSC NODE SCORE, or RSC --rule 'SCORE: #uname eq NODE'")
    return build.location(args.rsc, args.node, args.score, ids, role=args.role)


def frag_order(args, ids):
    if args.set:
        sets = [build.ResourceSet(s.split(), sequential=args.sequential) for s in args.set]
        return build.order_sets(sets, ids, kind=args.kind, symmetrical=args.symmetrical)
    if not args.first or not args.then:
        raise Usage("order needs FIRST THEN, or --set 'A B' --set 'C D'")
    return build.order(args.first, args.then, ids, kind=args.kind,
                       symmetrical=args.symmetrical, first_action=args.first_action,
                       then_action=args.then_action)


def frag_colocation(args, ids):
    if args.set:
        sets = [build.ResourceSet(s.split(), sequential=args.sequential) for s in args.set]
        return build.colocation_sets(sets, args.score, ids)
    if not args.rsc or not args.with_rsc:
        raise Usage("colocation needs RSC WITH-RSC [--score S], or --set ... --set ...")
    return build.colocation(args.rsc, args.with_rsc, args.score, ids)


def frag_level(args, ids):
    return build.fencing_level(args.target, args.index, args.devices.split(","), ids)


def frag_property(args, ids):
    return build.cluster_properties(_pairs(args.properties, "property"), ids)


def frag_defaults(args, ids):
    return build.defaults("op_defaults" if args.op_defaults else "rsc_defaults",
                          _pairs(args.values, "default"), ids)


def cmd_fragment(args):
    from hasf.cib import verify

    base = build.parse_file(args.cib) if args.cib else None
    ids = IdProvider.from_tree(base) if base is not None else IdProvider()
    element = args.builder(args, ids)
    problems = Problems()
    agents.check_tree(element, _catalog(args), problems, args.strict_agents)
    warn_unverified(element, problems)
    if base is not None and element.get("id") and \
            any(el.get("id") == element.get("id") for el in base.iter()):
        problems.error("", "id %s already exists in %s" % (element.get("id"), args.cib))
    if not problems and not args.no_validate:
        verdict = verify.validate_fragment(element, base, _schema(args))
        if not verdict:
            problems.error(verdict.what, verdict.messages)
    problems.raise_if_any("the %s fragment" % element.tag)
    _warn(problems.warnings)
    if element.tag == "fencing-level":
        # the section may not exist yet: wrap it, and let cibadmin create or merge it
        wrapper = etree.Element("fencing-topology")
        wrapper.append(element)
        element = wrapper
    sys.stderr.write("# load with: %s\n" % load_hint(element.tag))
    _emit(args, serialize(element))


def load_hint(tag):
    """The cibadmin command that loads a fragment with this root tag."""
    section = SECTION_OF.get(tag, "configuration")
    if tag in ("fencing-topology", "rsc_defaults", "op_defaults"):
        return "cibadmin --modify --allow-create -o configuration --xml-pipe"
    if tag == "cluster_property_set":
        return "cibadmin --modify --allow-create -o crm_config --xml-pipe"
    return "cibadmin --create -o %s --xml-pipe" % section


def _emit(args, text):
    output = getattr(args, "output", None)
    if not output or output == "-":
        sys.stdout.write(text)
        return
    from hasf.cib.files import replace_private

    replace_private(output, text)      # a CIB holds fence passwords: never 0644


# -- argument parsing -------------------------------------------------------------------------
def _common(p):
    p.add_argument("--schema", help="validate-with schema (default: newest installed, e.g. "
                   "pacemaker-3.9)")
    p.add_argument("--agents-dir", action="append", metavar="DIR",
                   help="look for agents (executables or NAME.xml meta-data) here first")
    p.add_argument("--ocf-root", help="OCF root of installed agents (default /usr/lib/ocf)")
    p.add_argument("--strict-agents", action="store_true",
                   help="an agent whose meta-data cannot be found is an error, not a warning")


def verify_limit():
    from hasf.cib.verify import SETTLE_LIMIT

    return SETTLE_LIMIT


def parser():
    top = argparse.ArgumentParser(prog="hasf-cib", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("build", help="write the complete CIB of a scenario spec")
    p.add_argument("spec")
    p.add_argument("-o", "--output", help="write here (atomically) instead of stdout")
    p.add_argument("--no-validate", action="store_true", help="skip the schema check")
    p.add_argument("--legacy-heartbeat-v2", action="store_true",
                   help="LEGACY: render for Heartbeat v2 / CRM 2.0.x (the seed's era); current "
                   "Pacemaker cannot load it")
    p.add_argument("--dtd", help="with --legacy-heartbeat-v2: check against this crm.dtd "
                   "(default: $HASF_CRM_DTD)")
    _common(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("verify", help="schema + crm_verify (every node up)")
    p.add_argument("source", help="a spec (TOML) or a CIB (XML)")
    p.add_argument("--settle", action="store_true", default=None,
                   help="also run the start-up transition (crm_simulate -S) before crm_verify "
                   "(default: only for CIBs of up to %d primitives)" % verify_limit())
    p.add_argument("--no-settle", dest="settle", action="store_false",
                   help="only bring the nodes up (crm_simulate -u), then crm_verify")
    _common(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("simulate", help="crm_simulate: all up, a node fails, it returns")
    p.add_argument("source", help="a spec (TOML) or a CIB (XML)")
    p.add_argument("--fail", metavar="NODE", help="the node that fails (default: the first)")
    p.add_argument("--actions", action="store_true", help="also list each step's actions")
    _common(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("apply", help="make the live (or file) CIB match the spec")
    p.add_argument("spec")
    p.add_argument("--cib-file", help="apply to this file CIB (CIB_file); created if missing")
    p.add_argument("--via", help="argv prefix to reach the cluster, e.g. "
                   "'nsenter -t PID -n -m -u --' (split like a shell would, never run by one)")
    p.add_argument("--dry-run", action="store_true", help="show whether it would change")
    p.add_argument("--show-diff", action="store_true", help="print the crm_diff patch")
    p.add_argument("--no-check", action="store_true", help="skip schema + crm_verify")
    _common(p)
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("adopt", help="the hasf spec of a CIB using ClusterLabs' agents")
    p.add_argument("cib", nargs="?", help="a CIB XML file (default: the live CIB)")
    p.add_argument("--via", help="argv prefix to reach the cluster (as for apply)")
    p.add_argument("-o", "--output", help="write the spec here (0600) instead of stdout")
    p.set_defaults(func=cmd_adopt)

    p = sub.add_parser("example", help="print a shipped example spec (default: hasf-demo)")
    p.add_argument("name", nargs="?", default="hasf-demo")
    p.add_argument("-o", "--output")
    p.set_defaults(func=cmd_example)

    def fragment(name, builder, help_text):
        q = sub.add_parser(name, help=help_text)
        q.add_argument("--cib", help="check references/ids against this CIB (XML file)")
        q.add_argument("-o", "--output")
        q.add_argument("--no-validate", action="store_true")
        _common(q)
        q.set_defaults(func=cmd_fragment, builder=builder)
        return q

    q = fragment("primitive", frag_primitive, "a primitive of any class")
    q.add_argument("id")
    q.add_argument("agent", help="ocf:PROVIDER:TYPE, CLASS:TYPE, fence_*, external/*")
    q.add_argument("params", nargs="*", metavar="NAME=VALUE")
    q.add_argument("--meta", action="append", metavar="NAME=VALUE")
    q.add_argument("--op", action="append", metavar="'NAME interval=.. timeout=..'")
    q.add_argument("--clone", action="store_true")
    q.add_argument("--clone-meta", action="append", metavar="NAME=VALUE")

    q = fragment("vm", frag_vm, "a VM primitive (ocf:hasf:VirtualMachine)")
    q.add_argument("name")
    q.add_argument("--config")
    q.add_argument("--hypervisor")
    q.add_argument("--agent", help="default " + AGENTS["vm"].agent)
    q.add_argument("--monitor", default="10s", help="monitor interval (default 10s)")
    q.add_argument("params", nargs="*", metavar="NAME=VALUE")
    q.add_argument("--meta", action="append", metavar="NAME=VALUE")

    q = fragment("fence", frag_fence, "a fence device (stonith:fence_hasf_*, external/hasf-*)")
    q.add_argument("id")
    q.add_argument("agent")
    q.add_argument("params", nargs="*", metavar="NAME=VALUE")
    q.add_argument("--hosts", help="node1,node2 -> pcmk_host_list")
    q.add_argument("--host-map", help="'node1:port1;node2:port2' -> pcmk_host_map")

    q = fragment("location", frag_location, "rsc_location (score or rule form)")
    q.add_argument("rsc")
    q.add_argument("node", nargs="?")
    q.add_argument("score", nargs="?")
    q.add_argument("--rule", help="'SCORE: ATTR OP VALUE ...', e.g. '-INFINITY: #uname ne node2'")
    q.add_argument("--boolean-op", default="and", choices=("and", "or"))
    q.add_argument("--role")

    q = fragment("order", frag_order, "rsc_order (kind, never a score)")
    q.add_argument("first", nargs="?")
    q.add_argument("then", nargs="?")
    q.add_argument("--kind", default="Mandatory", choices=build.ORDER_KINDS)
    q.add_argument("--symmetrical", type=parse_bool)
    q.add_argument("--first-action", choices=build.ACTIONS)
    q.add_argument("--then-action", choices=build.ACTIONS)
    q.add_argument("--set", action="append", metavar="'RSC RSC ...'",
                   help="a resource set (repeat for each set, in order)")
    q.add_argument("--sequential", type=parse_bool)

    q = fragment("colocation", frag_colocation, "rsc_colocation")
    q.add_argument("rsc", nargs="?")
    q.add_argument("with_rsc", nargs="?", metavar="with-rsc")
    q.add_argument("--score", default="INFINITY")
    q.add_argument("--set", action="append", metavar="'RSC RSC ...'")
    q.add_argument("--sequential", type=parse_bool)

    q = fragment("fencing-level", frag_level, "a fencing-topology level")
    q.add_argument("target")
    q.add_argument("index", type=int)
    q.add_argument("devices", help="dev1[,dev2]")

    q = fragment("property", frag_property, "a cluster_property_set")
    q.add_argument("properties", nargs="+", metavar="NAME=VALUE")

    q = fragment("defaults", frag_defaults, "rsc_defaults (or --op: op_defaults)")
    q.add_argument("values", nargs="+", metavar="NAME=VALUE")
    q.add_argument("--op", dest="op_defaults", action="store_true")
    return top


def main(argv=None):
    top = parser()
    args, extra = top.parse_known_args(argv)
    # NAME=VALUE parameters may come before or after the options
    if extra and hasattr(args, "params") and all("=" in e and not e.startswith("-")
                                                 for e in extra):
        args.params = list(args.params or []) + extra
    elif extra:
        top.error("unrecognized arguments: %s" % " ".join(extra))
    try:
        return args.func(args) or EXIT_OK
    except Usage as exc:
        sys.stderr.write("hasf-cib: %s\n" % exc)
        return EXIT_USAGE
    except SpecError as exc:
        _warn(exc.warnings)
        sys.stderr.write("hasf-cib: %s\nnothing was written.\n" % exc)
        return EXIT_PROBLEMS
    except ToolError as exc:
        sys.stderr.write("hasf-cib: %s\n" % exc)
        return EXIT_TOOL
    except (CibError, OSError) as exc:
        sys.stderr.write("hasf-cib: %s\n" % exc)
        return EXIT_PROBLEMS


if __name__ == "__main__":
    sys.exit(main())
