"""Expanding a checked Scenario into the complete CIB of the HASF scenario.

What the seed did by hand, in XML blobs, becomes: cluster properties, a
fence device (and topology), the iSCSI target + LUN pinned to the SAN node,
a cloned initiator, a cloned OCFS2 membership notifier, one cloned OCFS2
Filesystem per store, and each VM with its monitor op, its preferred node
and its orders/colocations -- stores after the initiator and after the
membership clone, every VM after and with its stores.

`AGENTS` is the one table that says which agent plays each role and how the
spec's fields map to its parameters.  The roles whose hasf agents are still
being written use the planned ClusterLabs-style names; change them here.
When an agent's meta-data is available (hasf.cib.agents), op timeouts, the
clone's `notify` and `allow-migrate` come from it; otherwise from the table.
"""

from hasf.cib import build
from hasf.cib.agents import AgentCatalog, check_tree
from hasf.cib.unverified import warn_unverified
from hasf.cib.build import Cib, Expr, Op, parse_agent
from hasf.cib.errors import CibError, Problems
from hasf.cib.tools import newest_schema


class Role:
    """An agent playing one role: its name, the spec->parameter map, planned defaults."""

    def __init__(self, agent, params=None, ops=None, notify=False, migrate=False):
        self.agent = agent
        self.params = dict(params or {})
        #: planned default ops, used only when the agent's meta-data is not available
        self.ops = ops or {"start": 60, "stop": 60, "monitor": (20, 40)}
        self.notify = notify
        self.migrate = migrate

    def map(self, **fields):
        """Spec fields -> agent parameters (fields that are None are left out)."""
        return {self.params[k]: v for k, v in fields.items() if v is not None}


AGENTS = {
    "vm": Role("ocf:hasf:VirtualMachine", {"config": "config", "hypervisor": "hypervisor"},
               ops={"start": 120, "stop": 120, "monitor": (10, 30), "migrate_to": 120,
                    "migrate_from": 120}, migrate=True),
    "filesystem": Role("ocf:hasf:Filesystem", {"device": "device", "directory": "directory",
                                                "fstype": "fstype", "options": "options"}),
    "iscsi-target": Role("ocf:hasf:iSCSITarget", {"iqn": "iqn", "implementation":
                                                  "implementation", "portal": "portals"}),
    "iscsi-lun": Role("ocf:hasf:iSCSILogicalUnit", {"iqn": "target_iqn", "lun": "lun",
                                                    "path": "path",
                                                    "implementation": "implementation"}),
    "initiator": Role("ocf:hasf:iscsi", {"portal": "portal", "iqn": "target"},
                      ops={"start": 120, "stop": 120, "monitor": (30, 30)}),
    "membership": Role("ocf:hasf:OCFS2Membership", {"nodes": "nodes",
                                                    "cluster_name": "cluster_name"},
                       ops={"start": 60, "stop": 60, "monitor": (20, 30)}, notify=True),
}
FENCE_MONITOR = "60s"
#: names of the resources the scenario generates besides the spec's own
INITIATOR, MEMBERSHIP = "iscsi-initiator", "ocfs2-membership"


def _default_ops(role, info):
    """{name: Op} from the agent's meta-data when known, else from the role's plan."""
    ops = {}
    if info is not None:
        for name in ("start", "stop", "migrate_to", "migrate_from"):
            entry = info.advertised(name)
            if entry is not None:
                ops[name] = Op(name, 0, entry.timeout)
        entry = info.advertised("monitor")
        if entry is not None:
            ops["monitor"] = Op("monitor", entry.interval or 10, entry.timeout)
        return ops
    for name, value in (role.ops if role else {}).items():
        if isinstance(value, tuple):
            ops[name] = Op(name, value[0], value[1])
        else:
            ops[name] = Op(name, 0, value)
    return ops


def ops_for(role, info, monitor=None, user_ops=(), check_level=None, migrate=False):
    """The ops of a primitive: defaults from meta-data (or the role's plan), the monitor
    interval and OCF_CHECK_LEVEL applied, user ops (dicts of spec keys) replacing defaults."""
    defaults = _default_ops(role, info)
    if not migrate:
        defaults.pop("migrate_to", None)
        defaults.pop("migrate_from", None)
    if monitor is not None and "monitor" in defaults:
        defaults["monitor"].interval = monitor
    elif monitor is not None:
        defaults["monitor"] = Op("monitor", monitor)
    if check_level is not None and "monitor" in defaults:
        defaults["monitor"].check_level = check_level
        if info is not None:
            entry = info.advertised("monitor", depth=check_level)
            if entry is not None and entry.timeout:
                defaults["monitor"].timeout = build.duration(entry.timeout)
    given = {}
    for op in user_ops:
        args = {k.replace("-", "_"): v for k, v in op.items()}
        if "check_level" not in args and check_level is not None and op["name"] == "monitor":
            args["check_level"] = check_level
        made = Op(**args)
        if made.timeout is None and op["name"] in defaults:
            made.timeout = defaults[op["name"]].timeout
        given.setdefault(op["name"], []).append(made)
    out = []
    for name in ("start", "stop", "monitor", "migrate_to", "migrate_from"):
        if name in given:
            out.extend(given.pop(name))
        elif name in defaults:
            out.append(defaults[name])
    for extra in given.values():
        out.extend(extra)
    return out


class Expander:
    def __init__(self, scenario, catalog=None, schema=None, strict_agents=False):
        self.s = scenario
        self.catalog = catalog if catalog is not None else AgentCatalog()
        self.cib = Cib(schema or newest_schema())
        self.ids = self.cib.ids
        self.problems = Problems()
        self.strict = strict_agents
        self.top = {}        # spec name -> id of the top-level resource (clone/group)

    # -- helpers -----------------------------------------------------------------------
    def role(self, name):
        """The role from AGENTS, with the agent the spec's [agents] table names, if any."""
        role = AGENTS[name]
        agent = getattr(self.s, "agents", {}).get(name)
        if agent is None:
            return role
        return Role(agent, role.params, role.ops, role.notify, role.migrate)

    def info(self, agent):
        return self.catalog.lookup(*parse_agent(agent))

    def ops(self, role, agent, monitor=None, user_ops=(), check_level=None, migrate=False):
        return ops_for(role, self.info(agent), monitor, user_ops, check_level, migrate)

    def clone_meta(self, agent, role=None, extra=None):
        info = self.info(agent)
        notify = info.needs_notify if info is not None else bool(role and role.notify)
        meta = {"interleave": True}
        if notify:
            meta["notify"] = True
        meta.update(extra or {})
        return meta

    def add_clone(self, name, primitive, meta):
        clone = self.cib.add(build.clone(primitive, self.ids, meta))
        self.top[name] = clone.get("id")
        return clone

    def after(self, first, then):
        self.cib.add(build.order(first, then, self.ids, kind="Mandatory"))

    def together(self, rsc, with_rsc):
        self.cib.add(build.colocation(rsc, with_rsc, "INFINITY", self.ids))

    # -- the scenario ----------------------------------------------------------------------
    def expand(self):
        s = self.s
        names = [f.name for f in s.fences] + ([s.san.name] if s.san else []) + \
            [st.name for st in s.stores] + [w.name for w in s.workloads]
        for name in names:
            self.ids.claim(name)
        self.cib.add(build.cluster_properties(s.properties, self.ids))
        if s.rsc_defaults:
            self.cib.add(build.defaults("rsc_defaults", s.rsc_defaults, self.ids))
        if s.op_defaults:
            self.cib.add(build.defaults("op_defaults", s.op_defaults, self.ids))
        for node in s.nodes:
            self.cib.add_node(node.name, node.id)
        self.fencing()
        initiator = self.san() if s.san else None
        membership = self.membership() if any(st.fstype == "ocfs2" for st in s.stores) else None
        for store in s.stores:
            self.store(store, initiator, membership)
        placed = [(w, self.workload(w)) for w in s.workloads]
        for workload, top in placed:
            if top is not None:
                self.constrain(workload, top)
        check_tree(self.cib.root, self.catalog, self.problems, self.strict)
        warn_unverified(self.cib.root, self.problems)
        return self.cib

    def fencing(self):
        for fence in self.s.fences:
            element = build.fence_device(
                fence.name, fence.agent, self.ids, fence.params,
                host_list=None if fence.host_map else fence.hosts,
                host_map=fence.host_map or None, meta=fence.meta,
                ops=[Op("monitor", FENCE_MONITOR)])
            self.cib.add(element)
            self.top[fence.name] = fence.name
            targets = fence.targets()
            if len(targets) == 1 and len(self.s.nodes) > 1:
                # a device that fences only one node should not run on that node
                self.cib.add(build.location(fence.name, targets[0], "-INFINITY", self.ids))
        for node, levels in self.s.topology.items():
            for index, devices in enumerate(levels, 1):
                self.cib.add(build.fencing_level(node, index, devices, self.ids))

    def san(self):
        san = self.s.san
        target_role, lun_role = self.role("iscsi-target"), self.role("iscsi-lun")
        target_id = self.ids.new(san.name, "target")
        params = target_role.map(iqn=san.iqn, implementation=san.implementation,
                                 portal=san.portal)
        params.update(san.target_params)
        if san.chap is not None:
            params.update(san.chap.target_params())
        members = [build.primitive(target_id, target_role.agent, self.ids, params,
                                   ops=self.ops(target_role, target_role.agent))]
        for lun in san.luns:
            lun_params = lun_role.map(iqn=san.iqn, lun=lun.number, path=lun.path,
                                      implementation=san.implementation)
            lun_params.update(lun.params)
            members.append(build.primitive(self.ids.new(san.name, "lun%d" % lun.number),
                                           lun_role.agent, self.ids, lun_params,
                                           ops=self.ops(lun_role, lun_role.agent)))
        self.cib.add(build.group(san.name, members, self.ids))
        self.top[san.name] = san.name
        # the LUN's backing store is local to the SAN node: never anywhere else
        self.cib.add(build.location_rule(san.name, "-INFINITY",
                                         [Expr("#uname", "ne", san.node)], self.ids))
        role = self.role("initiator")
        params = role.map(portal=san.portal, iqn=san.iqn)
        params.update(san.initiator_params)
        if san.chap is not None:
            params.update(san.chap.initiator_params())
        primitive = build.primitive(self.ids.new(INITIATOR), role.agent, self.ids, params,
                                    ops=self.ops(role, role.agent))
        clone = self.add_clone(INITIATOR, primitive, self.clone_meta(role.agent, role))
        if san.initiators and set(san.initiators) != set(self.s.node_names):
            self.cib.add(build.location_rule(
                clone.get("id"), "-INFINITY", [Expr("#uname", "ne", n) for n in san.initiators],
                self.ids))
        self.after(san.name, clone.get("id"))
        return clone.get("id")

    def membership(self):
        role = self.role("membership")
        params = {}
        if self.s.ocfs2 is not None:
            if role.agent == AGENTS["membership"].agent:  # hasf's: the node list from [ocfs2]
                params = role.map(nodes=self.s.ocfs2.nodes_param(self.s.node_names) or None,
                                  cluster_name=self.s.ocfs2.cluster_name)
            params.update(self.s.ocfs2.params)
        primitive = build.primitive(self.ids.new(MEMBERSHIP), role.agent, self.ids, params,
                                    ops=self.ops(role, role.agent))
        return self.add_clone(MEMBERSHIP, primitive,
                              self.clone_meta(role.agent, role)).get("id")

    def store(self, store, initiator, membership):
        role = self.role("filesystem")
        params = role.map(device=store.device, directory=store.directory,
                          fstype=store.fstype, options=store.options)
        params.update(store.params)
        primitive = build.primitive(store.name, role.agent, self.ids, params,
                                    ops=self.ops(role, role.agent,
                                                 check_level=store.check_level))
        if not store.clone:
            self.cib.add(primitive)
            self.top[store.name] = store.name
            top = store.name
        else:
            top = self.add_clone(store.name, primitive,
                                 self.clone_meta(role.agent, role)).get("id")
        for dependency in (initiator, membership if store.fstype == "ocfs2" else None):
            if dependency:
                self.after(dependency, top)
                self.together(top, dependency)

    def workload(self, w):
        role = self.role("vm") if w.kind == "vm" else None
        agent = w.agent or role.agent
        try:
            parse_agent(agent)
        except CibError as exc:
            self.problems.error("resource %s" % w.name, str(exc))
            return None
        meta = {}
        info = self.info(agent)
        if role is not None:
            can = (info.supports("migrate_to") and info.supports("migrate_from")) \
                if info is not None else role.migrate
            if can and w.meta.get("allow-migrate", True) not in (False, "false"):
                meta["allow-migrate"] = True
        meta.update(w.meta)
        migrate = str(meta.get("allow-migrate", False)).lower() == "true"
        primitive = build.primitive(w.name, agent, self.ids, w.params, meta,
                                    self.ops(role, agent, w.monitor, w.ops, migrate=migrate))
        if w.clone:
            extra = w.clone if isinstance(w.clone, dict) else None
            top = self.add_clone(w.name, primitive, self.clone_meta(agent, None, extra)).get("id")
        else:
            self.cib.add(primitive)
            self.top[w.name] = w.name
            top = w.name
        return top

    def constrain(self, w, top):
        place = w.placement
        for node, value in place.prefer.items():
            self.cib.add(build.location(top, node, value, self.ids))
        for node in place.avoid:
            self.cib.add(build.location(top, node, "-INFINITY", self.ids))
        if place.only:
            self.cib.add(build.location_rule(
                top, "-INFINITY", [Expr("#uname", "ne", n) for n in place.only], self.ids))
        # (an unknown name is already a spec problem; skipping it lets the rest be checked)
        for ref in w.after:
            if ref in self.top:
                self.after(self.top[ref], top)
        for ref in w.with_:
            if ref in self.top:
                self.together(top, self.top[ref])


def expand(scenario, catalog=None, schema=None, strict_agents=False):
    """(Cib, Problems): the complete configuration and what the agent checks found."""
    expander = Expander(scenario, catalog, schema, strict_agents)
    cib = expander.expand()
    return cib, expander.problems


def build_spec(path, catalog=None, schema=None, strict_agents=False):
    """Spec file -> (Cib, warnings), or one SpecError listing the spec's own problems and
    the agent checks' findings together.  The expansion is attempted even when the spec
    has problems (so agent problems are found in the same round); whatever of it a broken
    spec makes impossible is simply covered by the spec's own messages."""
    from hasf.cib import spec as spec_module

    scenario = spec_module.load(path, collect=True)
    problems = scenario.problems
    cib = None
    try:
        cib, found = expand(scenario, catalog, schema, strict_agents)
        problems.errors.extend(found.errors)
        problems.warnings.extend(w for w in found.warnings if w not in problems.warnings)
    except (CibError, KeyError, ValueError, TypeError):
        if not problems.errors:
            raise
    problems.raise_if_any(path)
    return cib, problems.warnings
