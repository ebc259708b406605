"""The scenario spec: a few lines of TOML describing the whole cluster.

Why TOML: a spec is a handful of flat tables and lists written by hand;
TOML has no implicit typing surprises (YAML's `no`, `on`, `1e3`, `08`), is
in the standard library from Python 3.11 (`tomllib`) and is the same code as
`tomli` below it (hasf.cib.tomlread) -- YAML would need PyYAML.  See
cib/examples/hasf-demo.toml for every key with comments.

`load()` checks the whole spec and raises one SpecError listing every
problem (unknown keys, unknown nodes, duplicate names, missing fence
devices, non-cluster filesystems in clones, ...); it never stops at the
first one.
"""

import re

from hasf.addresses import is_ipv4
from hasf.cib import tomlread
from hasf.cib.build import CibError, duration, score
from hasf.cib.chap import CIB_READERS, PASSWORD_PARAMS, clashes, read_chap
from hasf.cib.errors import Problems
from hasf.cib.ids import why_invalid

CLUSTER_FS = ("ocfs2", "gfs2")
NODE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
OPS_KEYS = ("name", "interval", "timeout", "role", "on-fail", "start-delay", "check-level")


class Node:
    def __init__(self, name, node_id):
        self.name, self.id = name, node_id


class Fence:
    def __init__(self, name, agent, hosts, host_map, params, meta, levels=None):
        self.name, self.agent, self.hosts, self.host_map = name, agent, hosts, host_map
        self.params, self.meta = params, meta

    def targets(self):
        return list(self.host_map) if self.host_map else list(self.hosts)


class Placement:
    """Where a resource may / likes to run: prefer {node: score}, avoid [..], only [..]."""

    def __init__(self, prefer=None, avoid=(), only=()):
        self.prefer = dict(prefer or {})
        self.avoid = list(avoid)
        self.only = list(only)


class Lun:
    def __init__(self, number, path, params):
        self.number, self.path, self.params = number, path, params


class San:
    def __init__(self, name, node, iqn, portal, implementation, luns, target_params,
                 initiator_params, initiators=(), chap=None):
        self.name, self.node, self.iqn, self.portal = name, node, iqn, portal
        #: cib.chap.Chap for [san.chap], or None
        self.chap = chap
        self.implementation, self.luns = implementation, luns
        self.target_params, self.initiator_params = target_params, initiator_params
        #: nodes that log in to the target (empty: every node)
        self.initiators = list(initiators)


class Store:
    def __init__(self, name, device, directory, fstype, options, clone, params, check_level):
        self.name, self.device, self.directory, self.fstype = name, device, directory, fstype
        self.options, self.clone, self.params = options, clone, params
        self.check_level = check_level


class Workload:
    """A VM ([[vm]]) or any other primitive ([[resource]])."""

    def __init__(self, kind, name, agent, params, meta, ops, placement, after, with_,
                 clone, monitor):
        self.kind, self.name, self.agent, self.params, self.meta = kind, name, agent, params, meta
        self.ops, self.placement, self.after, self.with_ = ops, placement, after, with_
        self.clone, self.monitor = clone, monitor


class Scenario:
    def __init__(self):
        self.name = None
        self.nodes = []
        self.properties = {}
        self.rsc_defaults = {}
        self.op_defaults = {}
        self.fences = []
        self.topology = {}       # node -> [[device, ...], ...] (level 1, 2, ...)
        self.san = None
        self.stores = []
        self.workloads = []
        self.stonith_enabled = True
        self.agents = {}         # role -> agent replacing hasf.cib.expand.AGENTS[role].agent
        self.ocfs2 = None        # Ocfs2: o2cb's cluster name and every node's o2net address

    @property
    def node_names(self):
        return [n.name for n in self.nodes]


# -- reading helpers: every one records problems instead of raising ------------------------
class _Reader:
    def __init__(self, problems):
        self.p = problems

    def table(self, value, where):
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.p.error(where, "must be a table")
            return {}
        return value

    def keys(self, table, where, allowed):
        for key in table:
            if key not in allowed:
                self.p.error(where, "unknown key %r (known: %s)" % (key, ", ".join(allowed)))

    def string(self, table, key, where, required=False, default=None):
        value = table.get(key, default)
        if value is None:
            if required:
                self.p.error(where, "%s is required" % key)
            return default
        if not isinstance(value, str) or not value:
            self.p.error(where, "%s must be a non-empty string" % key)
            return default
        return value

    def strings(self, table, key, where, default=()):
        value = table.get(key, list(default))
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.p.error(where, "%s must be a list of strings" % key)
            return list(default)
        return value

    def scalars(self, table, key, where):
        """A table of name = scalar (params, meta, properties)."""
        value = self.table(table.get(key), "%s.%s" % (where, key))
        out = {}
        for name, item in value.items():
            if isinstance(item, (str, int, float, bool)):
                out[name] = item
            else:
                self.p.error(where, "%s.%s must be a string, number or boolean" % (key, name))
        return out

    def boolean(self, table, key, where, default):
        value = table.get(key, default)
        if not isinstance(value, bool):
            self.p.error(where, "%s must be true or false" % key)
            return default
        return value

    def duration(self, value, where, what):
        try:
            return duration(value)
        except CibError as exc:
            self.p.error(where, "%s: %s" % (what, exc))
            return None


def load(path, collect=False, module=None):
    return parse(tomlread.load(path, module), path, collect)


def loads(text, source="spec", collect=False, module=None):
    """module: the TOML reader (default tomllib / tomli; tests pass either explicitly)."""
    return parse(tomlread.loads(text, source, module), source, collect)


TOP_KEYS = ("cluster", "agents", "resource-defaults", "op-defaults", "fence",
            "fencing-topology", "san", "ocfs2", "store", "vm", "resource")
#: roles whose agent [agents] may replace (see hasf.cib.expand.AGENTS)
ROLES = ("vm", "filesystem", "iscsi-target", "iscsi-lun", "initiator", "membership")


def parse(data, source="spec", collect=False):
    """A checked Scenario, or SpecError listing every problem.

    collect=True never raises: the Scenario carries `problems` (errors and warnings) so a
    caller can add the agent checks' findings and fail once with all of them."""
    problems = Problems()
    r = _Reader(problems)
    s = Scenario()
    r.keys(data, "", TOP_KEYS)
    _cluster(r, s, r.table(data.get("cluster"), "[cluster]"))
    _agents(r, s, r.table(data.get("agents"), "[agents]"))
    s.rsc_defaults = r.scalars(data, "resource-defaults", "")
    s.op_defaults = r.scalars(data, "op-defaults", "")
    for i, item in enumerate(_array(r, data, "fence")):
        _fence(r, s, item, "[[fence]] #%d" % (i + 1))
    _topology(r, s, r.table(data.get("fencing-topology"), "[fencing-topology]"))
    if "san" in data:
        _san(r, s, r.table(data["san"], "[san]"))
    if "ocfs2" in data:
        _ocfs2(r, s, r.table(data["ocfs2"], "[ocfs2]"))
    for i, item in enumerate(_array(r, data, "store")):
        _store(r, s, item, "[[store]] #%d" % (i + 1))
    for kind in ("vm", "resource"):
        for i, item in enumerate(_array(r, data, kind)):
            _workload(r, s, kind, item, "[[%s]] #%d" % (kind, i + 1))
    _cross_checks(r, s)
    if s.properties.get("no-quorum-policy") is None:
        s.properties["no-quorum-policy"] = _default_policy(s)
    s.source = source
    s.problems = problems
    if not collect:
        problems.raise_if_any(source)
    s.warnings = problems.warnings
    return s


def _default_policy(s):
    """Two nodes: ignore -- the survivor must keep running (corosync's two_node grants it
    quorum anyway; Heartbeat-era two-node clusters had to say so explicitly).  More nodes
    with cloned cluster filesystems: freeze -- a partition without quorum cannot fence, so
    it must not try to stop (unmount) shared filesystems; it keeps what runs and starts
    nothing.  Otherwise Pacemaker's default, stop."""
    if len(s.nodes) == 2:
        return "ignore"
    if any(st.clone and st.fstype in CLUSTER_FS for st in s.stores):
        return "freeze"
    return "stop"


def _array(r, data, key):
    value = data.get(key, [])
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        r.p.error("", "%s must be an array of tables ([[%s]])" % (key, key))
        return []
    return value


def _cluster(r, s, table):
    where = "[cluster]"
    r.keys(table, where, ("name", "nodes", "stonith-enabled", "stonith-action",
                          "no-quorum-policy", "properties"))
    s.name = r.string(table, "name", where)
    names = r.strings(table, "nodes", where)
    if not names:
        r.p.error(where, "nodes must list at least one node")
    seen = set()
    for index, name in enumerate(names, 1):
        if not NODE_NAME.match(name):
            r.p.error(where, "node name %r is not a host name" % name)
        if name in seen:
            r.p.error(where, "node %r is listed twice" % name)
        seen.add(name)
        s.nodes.append(Node(name, index))
    s.stonith_enabled = r.boolean(table, "stonith-enabled", where, True)
    action = r.string(table, "stonith-action", where, default="reboot")
    if action not in ("reboot", "off"):
        r.p.error(where, "stonith-action must be reboot or off, not %r" % action)
    policy = table.get("no-quorum-policy")   # None: chosen in _default_policy()
    if policy is not None and policy not in ("stop", "ignore", "freeze", "demote", "fence"):
        r.p.error(where, "no-quorum-policy %r is not stop, ignore, freeze, demote or fence"
                  % policy)
    s.properties = {"stonith-enabled": s.stonith_enabled, "stonith-action": action,
                    "no-quorum-policy": policy}
    s.properties.update(r.scalars(table, "properties", where))


def _agents(r, s, table):
    """[agents] role = "ocf:PROVIDER:TYPE": another agent for a role, e.g. ClusterLabs'
    ocf:heartbeat:Filesystem until hasf's own is installed (same parameter names)."""
    r.keys(table, "[agents]", ROLES)
    for role, agent in table.items():
        if role not in ROLES:
            continue
        if not isinstance(agent, str) or agent.count(":") != 2 or not agent.startswith("ocf:"):
            r.p.error("[agents]", "%s must name an OCF agent as ocf:PROVIDER:TYPE" % role)
            continue
        s.agents[role] = agent


def _fence(r, s, table, where):
    r.keys(table, where, ("name", "agent", "hosts", "host-map", "params", "meta"))
    name = r.string(table, "name", where, required=True)
    where = "fence device %s" % name if name else where
    agent = r.string(table, "agent", where, required=True)
    if agent and not (agent.startswith(("fence_", "external/", "stonith:"))):
        r.p.error(where, "agent %r is not a fence agent (fence_*, external/*)" % agent)
    if agent and agent.startswith("stonith:"):
        agent = agent.split(":", 1)[1]
    hosts = r.strings(table, "hosts", where)
    host_map = r.table(table.get("host-map"), where + " host-map")
    for node, port in host_map.items():
        if not isinstance(port, str) or not port or any(c in port for c in ";: "):
            r.p.error(where, "host-map value for %s must be a name without ';', ':' or spaces"
                      % node)
    if not hosts and not host_map:
        r.p.error(where, "needs hosts = [...] or host-map = {...}: the nodes it can fence")
    s.fences.append(Fence(name, agent, hosts, host_map, r.scalars(table, "params", where),
                          r.scalars(table, "meta", where)))


def _topology(r, s, table):
    for node, levels in table.items():
        where = "[fencing-topology] %s" % node
        if isinstance(levels, str):
            levels = [levels]
        if not isinstance(levels, list) or not levels:
            r.p.error(where, "must be a list of levels (each a device or a list of devices)")
            continue
        parsed = []
        for level in levels:
            devices = level.split(",") if isinstance(level, str) else level
            if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
                r.p.error(where, "a level is a device name or a list of device names")
                continue
            parsed.append([d.strip() for d in devices if d.strip()])
        s.topology[node] = parsed


def _san(r, s, table):
    where = "[san]"
    r.keys(table, where, ("name", "node", "iqn", "portal", "implementation", "lun",
                          "initiators", "target-params", "initiator-params", "chap"))
    luns = []
    for i, item in enumerate(_array(r, table, "lun")):
        w = "[[san.lun]] #%d" % (i + 1)
        r.keys(item, w, ("number", "path", "params"))
        number = item.get("number", i + 1)
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            r.p.error(w, "number must be a LUN number (0, 1, ...)")
        luns.append(Lun(number, r.string(item, "path", w, required=True),
                        r.scalars(item, "params", w)))
    if not luns:
        r.p.error(where, "needs at least one [[san.lun]]")
    implementation = r.string(table, "implementation", where)
    target_params = r.scalars(table, "target-params", where)
    initiator_params = r.scalars(table, "initiator-params", where)
    chap = read_chap(r, r.table(table.get("chap"), "[san.chap]"), implementation)
    if chap is not None:
        for name in clashes(chap, target_params, initiator_params):
            r.p.error(where, "%s is set by [san.chap]: not again in target-params or "
                             "initiator-params" % name)
    for key, params in (("target-params", target_params),
                        ("initiator-params", initiator_params)):
        for name in sorted(set(params) & PASSWORD_PARAMS):
            r.p.warn(where, "%s.%s %s" % (key, name, CIB_READERS % (name + "_file")))
    s.san = San(r.string(table, "name", where, default="san"),
                r.string(table, "node", where, required=True),
                r.string(table, "iqn", where, required=True),
                r.string(table, "portal", where, required=True),
                implementation, luns, target_params, initiator_params,
                r.strings(table, "initiators", where), chap)


class Ocfs2:
    """OCFS2's own (o2cb) cluster: its name, each node's o2net IPv4 address, extra params."""

    def __init__(self, cluster_name, addresses, params):
        self.cluster_name, self.addresses, self.params = cluster_name, addresses, params

    def nodes_param(self, node_names):
        """The membership agent's `nodes`: name:address in cluster order (= o2cb numbers)."""
        return " ".join("%s:%s" % (n, self.addresses[n]) for n in node_names
                        if n in self.addresses)


def _ocfs2(r, s, table):
    where = "[ocfs2]"
    r.keys(table, where, ("cluster-name", "addresses", "params"))
    addresses = {}
    for node, address in r.scalars(table, "addresses", where).items():
        if not is_ipv4(str(address)):
            r.p.error(where, "addresses.%s must be an IPv4 address (o2net speaks IPv4)" % node)
        elif node not in s.node_names:
            r.p.error(where, "addresses.%s: no such node in [cluster] nodes" % node)
        else:
            addresses[node] = str(address)
    missing = [n for n in s.node_names if n not in addresses]
    if missing:
        r.p.error(where, "addresses must give every node's o2net address; missing: %s"
                  % ", ".join(missing))
    s.ocfs2 = Ocfs2(r.string(table, "cluster-name", where), addresses,
                    r.scalars(table, "params", where))


def _store(r, s, table, where):
    r.keys(table, where, ("name", "device", "directory", "fstype", "options", "clone",
                          "params", "check-level"))
    name = r.string(table, "name", where, required=True)
    where = "store %s" % name if name else where
    fstype = r.string(table, "fstype", where, default="ocfs2")
    clone = r.boolean(table, "clone", where, True)
    if clone and fstype not in CLUSTER_FS:
        r.p.error(where, "fstype %r is not cluster-safe and must not be cloned (mounted on "
                  "several nodes at once it gets corrupted); use %s, or clone = false"
                  % (fstype, " or ".join(CLUSTER_FS)))
    level = table.get("check-level")
    if level is not None and level not in (0, 10, 20):
        r.p.error(where, "check-level must be 0, 10 or 20")
    s.stores.append(Store(name, r.string(table, "device", where, required=True),
                          r.string(table, "directory", where, required=True), fstype,
                          r.string(table, "options", where), clone,
                          r.scalars(table, "params", where), level))


VM_KEYS = ("name", "config", "hypervisor", "agent", "params", "meta", "ops", "monitor",
           "prefer", "avoid", "only", "stores", "after", "with")
RESOURCE_KEYS = ("name", "agent", "params", "meta", "ops", "monitor", "prefer", "avoid",
                 "only", "after", "with", "clone")


def _workload(r, s, kind, table, where):
    r.keys(table, where, VM_KEYS if kind == "vm" else RESOURCE_KEYS)
    name = r.string(table, "name", where, required=True)
    where = "%s %s" % ("vm" if kind == "vm" else "resource", name) if name else where
    params = r.scalars(table, "params", where)
    if kind == "vm":
        for key in ("config", "hypervisor"):
            if key in table:
                params[key] = r.string(table, key, where)
        agent = r.string(table, "agent", where)
        stores = r.strings(table, "stores", where, [st.name for st in s.stores])
        after = r.strings(table, "after", where, stores)
        with_ = r.strings(table, "with", where, stores)
        clone = None
    else:
        agent = r.string(table, "agent", where, required=True)
        after = r.strings(table, "after", where)
        with_ = r.strings(table, "with", where)
        clone = table.get("clone", False)
        if isinstance(clone, dict):
            clone = {k: v for k, v in clone.items()}
        elif not isinstance(clone, bool):
            r.p.error(where, "clone must be true, false or a table of clone meta attributes")
            clone = False
    ops = []
    for i, op in enumerate(table.get("ops", [])):
        if not isinstance(op, dict):
            r.p.error(where, "ops must be a list of tables")
            continue
        r.keys(op, "%s op #%d" % (where, i + 1), OPS_KEYS)
        if not isinstance(op.get("name"), str):
            r.p.error(where, "op #%d needs a name" % (i + 1))
            continue
        for key in ("interval", "timeout", "start-delay"):
            if key in op:
                r.duration(op[key], where, "op %s %s" % (op["name"], key))
        ops.append(dict(op))
    monitor = table.get("monitor")
    if monitor is not None:
        monitor = r.duration(monitor, where, "monitor")
    s.workloads.append(Workload(kind, name, agent, params, r.scalars(table, "meta", where),
                                ops, _placement(r, table, where), after, with_, clone, monitor))


def _placement(r, table, where):
    prefer = table.get("prefer", {})
    if isinstance(prefer, str):
        prefer = {prefer: "INFINITY"}
    elif isinstance(prefer, list):
        prefer = {n: "INFINITY" for n in prefer if isinstance(n, str)}
    if not isinstance(prefer, dict):
        r.p.error(where, "prefer must be a node, a list of nodes or a table node = score")
        prefer = {}
    checked = {}
    for node, value in prefer.items():
        try:
            checked[node] = score(value)
        except CibError as exc:
            r.p.error(where, "prefer %s: %s" % (node, exc))
    return Placement(checked, r.strings(table, "avoid", where), r.strings(table, "only", where))


def _cross_checks(r, s):
    """Names unique and valid; every node, store and device named exists."""
    nodes = set(s.node_names)
    names = {}

    def claim(name, what):
        if not name:
            return
        reason = why_invalid(name)
        if reason:
            r.p.error(what, "name: " + reason)
        if name in names:
            r.p.error(what, "duplicate name %r (also used by %s)" % (name, names[name]))
        else:
            names[name] = what

    def node_ref(node, what):
        if node not in nodes:
            r.p.error(what, "unknown node %r (nodes: %s)" % (
                node, ", ".join(dict.fromkeys(s.node_names))))

    for fence in s.fences:
        claim(fence.name, "fence device %s" % fence.name)
        for node in fence.targets():
            node_ref(node, "fence device %s" % fence.name)
    if s.san:
        claim(s.san.name, "[san]")
        node_ref(s.san.node, "[san] node")
        for node in s.san.initiators:
            node_ref(node, "[san] initiators")
    for store in s.stores:
        claim(store.name, "store %s" % store.name)
    for w in s.workloads:
        what = "%s %s" % ("vm" if w.kind == "vm" else "resource", w.name)
        claim(w.name, what)
        for node in list(w.placement.prefer) + w.placement.avoid + w.placement.only:
            node_ref(node, what)
    known = set(names)
    for w in s.workloads:
        what = "%s %s" % ("vm" if w.kind == "vm" else "resource", w.name)
        for ref in dict.fromkeys(w.after + w.with_):
            if ref not in known:
                r.p.error(what, "depends on unknown resource %r" % ref)
            elif ref == w.name:
                r.p.error(what, "cannot depend on itself")
    devices = {f.name for f in s.fences}
    for node, levels in s.topology.items():
        node_ref(node, "[fencing-topology]")
        for level in levels:
            for device in level:
                if device not in devices:
                    r.p.error("[fencing-topology] %s" % node,
                              "unknown fence device %r (devices: %s)" % (
                                  device, ", ".join(sorted(devices)) or "none"))
    if s.stonith_enabled:
        if not s.fences:
            r.p.error("[cluster]", "stonith-enabled is true but no [[fence]] device is "
                      "defined: shared storage without fencing corrupts data")
        covered = {n for f in s.fences for n in f.targets()}
        for node in s.node_names:
            if s.fences and node not in covered:
                r.p.error("[cluster]", "node %s has no fence device (add it to a device's "
                          "hosts or host-map)" % node)
