"""Agent awareness: what an agent's own meta-data says about its parameters and actions.

hasf-cib never trusts its own idea of an agent.  It asks the agent: for
`ocf:P:T` it runs `T meta-data`, for `stonith:fence_*` it runs
`fence_* -o metadata`, for `stonith:external/*` the plugin's `getinfo-xml`
-- always through hasf.runner.  Where it looks, in this order:

1. directories the caller names (`--agents-dir`): an executable named like
   the agent (`VirtualMachine`, `fence_hasf_ipmi`, `hasf-ipmi`) or a saved
   meta-data file `<name>.xml`;
2. the installed paths: `$OCF_ROOT/resource.d/<provider>/<type>`,
   `/usr/sbin/fence_*`, `<stonith plugin dir>/<name>`;
3. for hasf's own agents, the source checkout: `packaging/executables.txt`
   maps the agent to its `module:main`, run by this interpreter.

An agent found nowhere is reported (a warning, or an error with
`strict=True`) and its primitives are simply not checked.

hasf-cib runs as root, and agent names come from a spec or a CIB someone
else may have written.  So a name is only ever looked up inside the agent
directories: provider and type must be single path components (no `/`, not
`.` or `..`; `os.path.join` would otherwise let `ocf:/tmp/x:evil` name
`/tmp/x/evil`), and the resolved path of whatever is found must lie under the
directory it was looked for in (a symlink out of it is refused).  A name that
fails is an error listed with the spec's other problems; nothing is run.
"""

import os
import sys

from lxml import etree

from hasf.cib.build import parse_text, seconds
from hasf.cib.errors import CibError
from hasf.runner import CommandError, run
from hasf.truth import parse_bool

OCF_ROOT = "/usr/lib/ocf"
SBIN_DIRS = ("/usr/sbin", "/sbin")
GLUE_DIRS = ("/usr/lib/stonith/plugins/external", "/usr/lib64/stonith/plugins/external")
METADATA_TIMEOUT = 15
#: parameters Pacemaker's fencer itself understands on every stonith resource
FENCER_PARAMS = ("provides", "stonith-timeout")
#: parameters the fencer passes itself on every call; never "missing" in a CIB
FENCER_SUPPLIES = ("action", "port", "plug", "nodename")


class ParamInfo:
    """One parameter; `deprecated` and `obsoletes` as fence-agents write them (an alias
    pair: the new name obsoletes the old, the old one is deprecated)."""

    __slots__ = ("name", "required", "unique", "type", "default", "deprecated", "obsoletes")

    def __init__(self, name, required=False, unique=False, type="string", default=None,
                 deprecated=False, obsoletes=None):
        self.name, self.required, self.unique = name, required, unique
        self.type, self.default = type, default
        self.deprecated, self.obsoletes = deprecated, obsoletes


class ActionInfo:
    __slots__ = ("name", "timeout", "interval", "depth", "role")

    def __init__(self, name, timeout=None, interval=None, depth=None, role=None):
        self.name, self.timeout, self.interval = name, timeout, interval
        self.depth, self.role = depth, role


class AgentInfo:
    """Parameters and actions of one agent, parsed from its meta-data."""

    def __init__(self, agent, source, parameters, actions):
        self.agent = agent
        self.source = source
        self.parameters = {p.name: p for p in parameters}
        self.actions = list(actions)

    @classmethod
    def from_xml(cls, agent, text, source):
        try:
            root = parse_text(text)
        except etree.XMLSyntaxError as exc:
            raise CibError("meta-data of %s from %s is not XML: %s" % (agent, source, exc)) from None
        # a cluster-glue plugin's getinfo-xml is a bare <parameters> element: same walk
        params = []
        for element in root.iter("parameter"):
            content = element.find("content")
            params.append(ParamInfo(
                element.get("name"), element.get("required") in ("1", "true"),
                element.get("unique") in ("1", "true"),
                content.get("type", "string") if content is not None else "string",
                content.get("default") if content is not None else None,
                element.get("deprecated") in ("1", "true")
                or element.find("deprecated") is not None,
                element.get("obsoletes")))
        actions = []
        for element in root.iter("action"):
            timeout = element.get("timeout")
            actions.append(ActionInfo(
                element.get("name"), _seconds_or_none(timeout), _seconds_or_none(
                    element.get("interval")), element.get("depth"), element.get("role")))
        return cls(agent, source, params, actions)

    # -- questions the generator asks --------------------------------------------------
    def supports(self, action):
        return any(a.name == action for a in self.actions)

    @property
    def needs_notify(self):
        """A clone of this agent gets notify=true exactly when it implements notify."""
        return self.supports("notify")

    def advertised(self, action, interval=None, depth=None):
        """The advertised entry for an op (matching depth, then interval), or None."""
        candidates = [a for a in self.actions if a.name == action]
        if not candidates:
            return None
        if depth is not None:
            for item in candidates:
                if item.depth is not None and str(item.depth) == str(depth):
                    return item
        if interval is not None:
            for item in candidates:
                if item.interval is not None and item.interval == interval and \
                        (depth is None or item.depth in (None, "0")):
                    return item
        for item in candidates:
            if item.depth in (None, "0"):
                return item
        return candidates[0]

    def depths(self):
        return sorted({int(a.depth) for a in self.actions
                       if a.name == "monitor" and a.depth is not None and a.depth.isdigit()})


def _seconds_or_none(value):
    if value in (None, ""):
        return None
    try:
        return seconds(value)
    except CibError:
        return None


# -- finding agents -----------------------------------------------------------------------
def _component_problem(value, what):
    if not value:
        return "%s is empty" % what
    if "/" in value or "\0" in value or value in (".", ".."):
        return "%s %r is not a single path component" % (what, value)
    return None


def name_problem(standard, provider, kind):
    """Why (standard, provider, type) cannot name an agent in an agent directory, or None."""
    if standard == "ocf":
        return _component_problem(provider, "provider") or _component_problem(kind, "type")
    if standard == "stonith":
        if kind and kind.startswith("external/"):
            return _component_problem(kind[len("external/"):], "cluster-glue plugin name")
        return _component_problem(kind, "type")
    return None


def _inside(path, directory):
    """Does path, all symlinks resolved, lie inside directory (also resolved)?"""
    real = os.path.realpath(path)
    base = os.path.realpath(directory)
    return real.startswith(base.rstrip(os.sep) + os.sep)


def refused(agent, name):
    """A ClusterLabs parameter the hasf agent does not take (hasf.clusterlabs), or None."""
    from hasf.clusterlabs import refusal_for

    return refusal_for(agent, name)


def check_names(root, problems):
    """Every primitive of a CIB tree names its agent by plain names (see name_problem)."""
    for element in root.iter("primitive"):
        key = (element.get("class"), element.get("provider"), element.get("type"))
        problem = name_problem(*key)
        if problem:
            problems.error("primitive %s" % element.get("id"), "agent %s: %s; it is not run"
                           % (":".join(p for p in key if p), problem))


def default_manifest():
    import hasf

    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(hasf.__file__))),
                        "packaging", "executables.txt")


def source_manifest(path=None):
    """(kind, name, module, function) of every hasf executable in a source checkout."""
    path = path or default_manifest()
    entries = []
    if os.path.isfile(path):
        with open(path) as handle:
            for line in handle:
                line = line.split("#", 1)[0].split()
                if len(line) == 3 and ":" in line[2]:
                    module, function = line[2].split(":", 1)
                    entries.append((line[0], line[1], module, function))
    return entries


def _hasf_agent_key(kind, name):
    return {"ocf": ("ocf", "hasf", name), "fence": ("stonith", None, "fence_hasf_" + name),
            "glue": ("stonith", None, "external/hasf-" + name)}.get(kind)


def _imported_metadata(module_name, agent_name):
    """Meta-data of the hasf.ocf.ResourceAgent named agent_name in module, built in-process."""
    import importlib

    from hasf.ocf import ResourceAgent
    from hasf.ocf.metadata import build

    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, ResourceAgent) and \
                getattr(value, "name", None) == agent_name:
            return build(value)
    return None


class AgentCatalog:
    """Looks agents up once and remembers the answer (including "not found")."""

    def __init__(self, dirs=(), ocf_root=None, sbin_dirs=SBIN_DIRS, glue_dirs=GLUE_DIRS,
                 use_source=True, use_installed=True, manifest=None):
        self.manifest = manifest
        self.dirs = [os.path.abspath(d) for d in dirs]
        self.ocf_root = ocf_root or os.environ.get("OCF_ROOT") or OCF_ROOT
        self.sbin_dirs = tuple(sbin_dirs)
        self.glue_dirs = tuple(glue_dirs)
        self.use_source = use_source
        self.use_installed = use_installed
        self._cache = {}
        self.looked = {}     # agent key -> places searched, when not found
        self.failures = {}   # agent key -> why a found agent gave no usable meta-data
        self.refused = set()  # agent keys named or resolved outside the agent directories

    def lookup(self, standard, provider, kind):
        key = (standard, provider, kind)
        if key not in self._cache:
            problem = name_problem(*key)
            if problem:
                self.failures[key] = "%s; it is not run" % problem
                self.refused.add(key)
                self._cache[key] = None
            else:
                self._cache[key] = self._find(key)
        return self._cache[key]

    def describe_missing(self, key):
        if key in self.failures:
            return self.failures[key]
        return "not found (looked in %s)" % ", ".join(self.looked.get(key, ["nowhere"]))

    def _candidates(self, key):
        """(how, where, argv tail or module, env, directory) tuples; how = 'file' | 'exec' |
        'import' | 'source'; directory: where `where` must lie (None: not a path)."""
        standard, provider, kind = key
        out = []
        if standard == "ocf":
            names, argv_tail = [kind], ["meta-data"]
            installed = [os.path.join(self.ocf_root, "resource.d", provider)]
        elif standard == "stonith" and kind.startswith("external/"):
            plugin = kind.split("/", 1)[1]
            names, argv_tail = [plugin], ["getinfo-xml"]
            installed = list(self.glue_dirs)
        elif standard == "stonith":
            names, argv_tail = [kind], ["-o", "metadata"]
            installed = list(self.sbin_dirs)
        else:
            return out
        env = {"OCF_ROOT": self.ocf_root}
        for directory in self.dirs:
            for name in names:
                out.append(("file", os.path.join(directory, name + ".xml"), None, None,
                            directory))
                out.append(("exec", os.path.join(directory, name), argv_tail, env, directory))
        if self.use_installed:
            for directory in installed:
                out.append(("exec", os.path.join(directory, names[0]), argv_tail, env,
                            directory))
        if self.use_source and provider in ("hasf", None):
            for entry_kind, name, module, function in source_manifest(self.manifest):
                if _hasf_agent_key(entry_kind, name) == key:
                    if entry_kind == "ocf":
                        out.append(("import", module, kind, None, None))
                    code = ("import sys; from %s import %s as main; sys.exit(main())"
                            % (module, function))
                    source_env = dict(env, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
                    out.append(("source", "%s:%s" % (module, function),
                                [sys.executable, "-c", code] + argv_tail, source_env, None))
        return out

    def _find(self, key):
        agent = ":".join(p for p in key if p)
        looked = []
        for candidate in self._candidates(key):
            how, where, directory = candidate[0], candidate[1], candidate[4]
            looked.append(where)
            if directory is not None and os.path.lexists(where) and \
                    not _inside(where, directory):
                self.failures[key] = ("%s resolves to %s, outside %s; it is not run"
                                      % (where, os.path.realpath(where), directory))
                self.refused.add(key)
                return None
            if how == "file":
                if os.path.isfile(where):
                    with open(where, "rb") as handle:
                        return AgentInfo.from_xml(agent, handle.read(), where)
                continue
            if how == "import":
                text = _imported_metadata(where, candidate[2])
                if text is not None:
                    return AgentInfo.from_xml(agent, text, "%s (imported)" % where)
                continue
            if how == "exec":
                if not (os.path.isfile(where) and os.access(where, os.X_OK)):
                    continue
                argv = [where] + candidate[2]
            else:
                argv = candidate[2]
            try:
                result = run(argv, env=candidate[3], timeout=METADATA_TIMEOUT)
            except CommandError as exc:
                self.failures[key] = "meta-data of %s from %s failed: %s" % (agent, where, exc)
                return None
            if result.rc != 0 or not result.stdout.strip():
                self.failures[key] = "meta-data of %s from %s failed: %s" % (
                    agent, where, result.summary())
                return None
            try:
                return AgentInfo.from_xml(agent, result.stdout, where)
            except CibError as exc:
                self.failures[key] = str(exc)
                return None
        self.looked[key] = looked
        return None


# -- checking primitives against meta-data ---------------------------------------------------
def _nvpairs(parent, tag):
    out = {}
    for nvset in parent.findall(tag):
        for pair in nvset.findall("nvpair"):
            out[pair.get("name")] = pair.get("value")
    return out


def _type_problem(param, value):
    if value is None:
        return None
    if param.type == "integer":
        word = value.strip()
        if not (word.lstrip("+-").isdigit()):
            return "must be an integer"
    if param.type == "boolean":
        try:
            if parse_bool(value, empty=None) is None:
                return "must be a boolean"
        except ValueError:
            return "must be a boolean"
    return None


def check_primitive(element, catalog, problems, strict=False, where=None):
    """Check one <primitive>'s parameters and ops against its agent; add to problems."""
    rsc = where or "primitive %s" % element.get("id")
    key = (element.get("class"), element.get("provider"), element.get("type"))
    agent = ":".join(p for p in key if p)
    if key[0] not in ("ocf", "stonith"):
        return None
    problem = name_problem(*key)
    if problem:
        problems.error(rsc, "agent %s: %s; it is not run" % (agent, problem))
        return None
    info = catalog.lookup(*key)
    if info is None and key in catalog.refused:
        problems.error(rsc, "agent %s: %s" % (agent, catalog.describe_missing(key)))
        return None
    if info is None:
        text = "agent %s %s; its parameters and op timeouts are not checked" % (
            agent, catalog.describe_missing(key))
        (problems.error if strict else problems.warn)(rsc, text)
        return None
    params = _nvpairs(element, "instance_attributes")
    known = set(info.parameters)
    replaced_by = {p.obsoletes: p.name for p in info.parameters.values() if p.obsoletes}
    for name in sorted(params):
        if name in known:
            problem = _type_problem(info.parameters[name], params[name])
            if problem:
                problems.error(rsc, "parameter %s=%r %s (agent %s)" % (name, params[name],
                                                                      problem, agent))
            if info.parameters[name].deprecated:
                problems.warn(rsc, "parameter %s of %s is deprecated%s" % (
                    name, agent, "; use %s" % replaced_by[name] if name in replaced_by else ""))
        elif key[0] == "stonith" and (name.startswith("pcmk_") or name in FENCER_PARAMS):
            continue
        elif refused(agent, name) is not None:
            refusal = refused(agent, name)
            if refusal.passes(params[name] or ""):
                problems.warn(rsc, "parameter %s=%r asks for nothing %s does not do; it can "
                              "go" % (name, params[name], agent))
            else:
                problems.error(rsc, refusal.problem())
        else:
            problems.error(rsc, "unknown parameter %r for %s (it has: %s)" % (
                name, agent, ", ".join(sorted(known)) or "no parameters"))
    for name in sorted(known):
        param = info.parameters[name]
        if key[0] == "stonith" and name in FENCER_SUPPLIES:
            continue
        if not param.required or param.deprecated or params.get(name):
            continue       # a deprecated alias is never demanded: its new name is
        if param.obsoletes and params.get(param.obsoletes):
            continue       # given under its old (deprecated) name
        problems.error(rsc, "required parameter %r of %s is not set" % (name, agent))
    for op in element.iter("op"):
        _check_op(rsc, agent, info, op, problems)
    return info


def _check_op(rsc, agent, info, op, problems):
    name = op.get("name")
    label = "op %s interval=%s" % (name, op.get("interval"))
    if info.agent.startswith("stonith:"):
        # fenced runs start/stop/monitor of a fence device itself; its actions are on/off/...
        if name not in ("start", "stop", "monitor"):
            problems.error(rsc, "%s: a fence device has only start, stop and monitor ops" % label)
        return
    if info.actions and not info.supports(name):
        problems.error(rsc, "%s: agent %s has no %s action (it has: %s)" % (
            label, agent, name, ", ".join(sorted({a.name for a in info.actions}))))
        return
    depth = None
    for pair in op.iter("nvpair"):
        if pair.get("name") == "OCF_CHECK_LEVEL":
            depth = pair.get("value")
    if depth not in (None, "0") and info.depths() and int(depth) not in info.depths():
        problems.warn(rsc, "%s: OCF_CHECK_LEVEL=%s is not advertised by %s (it has %s); the "
                      "agent falls back to a lower level" % (
                          label, depth, agent, ", ".join(map(str, info.depths()))))
    advertised = info.advertised(name, _seconds_or_none(op.get("interval")), depth)
    timeout = _seconds_or_none(op.get("timeout"))
    if advertised is not None and advertised.timeout is not None and timeout is not None \
            and timeout < advertised.timeout:
        problems.error(rsc, "%s: timeout %s is shorter than the %gs %s advertises" % (
            label, op.get("timeout"), advertised.timeout, agent))


def check_tree(root, catalog, problems, strict=False):
    """Check every primitive of a CIB (or fragment) tree."""
    for element in root.iter("primitive"):
        check_primitive(element, catalog, problems, strict)
