"""ocf:hasf:OCFS2Membership -- hands the cluster's nodes to OCFS2's o2cb stack (a clone).

The seed's SLES 10 cluster passed Heartbeat's membership to OCFS2 from clone
notifications; ClusterLabs deleted that code in 2013 and today an o2cb
cluster is configured by hand in /etc/ocfs2/cluster.conf on every node.
This agent does it from the CIB instead: one `nodes` list (name, number,
address -- the same everywhere, because it is one resource), registered in
configfs (hasf.ocfs2_membership.o2nm) when the clone instance starts on a
node, before that node's OCFS2 Filesystem clones mount.

- start: load o2nm, mount configfs if needed, register the cluster, add
  every node, mark this node local (o2net starts listening);
- notify (post-start): nodes whose instances started and are missing here
  are added, so a node that joins is known to o2net before it mounts;
  reload-agent (OCF 1.1: Pacemaker calls it when only `nodes` changed,
  instead of restarting the clone and every OCFS2 store ordered after it)
  adds nodes appended to `nodes` (o2cb can add nodes online, not remove
  them: a node dropped from the list stays registered, with a warning; one
  renumbered or readdressed fails the reload);
- stop: refused while an OCFS2 volume is mounted here (stop the Filesystem
  clones first -- ordering does that); then o2net is stopped and the cluster
  unregistered;
- monitor: the cluster is registered with this node local.  Which nodes are
  alive is o2hb's (disk heartbeat) business, not the configuration's.
"""

from hasf import ocf
from hasf.addresses import is_ipv4
from hasf.ocf.params import Checked
from hasf.ocfs2_membership.o2nm import TIMINGS, Node, NodeManager, O2nmError

DEFAULT_PORT = 7777
O2NM_MAX_NODES = 255


def _is_node_name(text):
    return 0 < len(text) <= 64 and all(c.isalnum() or c in "-_." for c in text)


def parse_nodes(text, port):
    """'name:address[:port] ...' -> [Node], numbered in the order given (0, 1, ...)."""
    nodes = []
    for number, word in enumerate(text.split()):
        name, _, rest = word.partition(":")
        address, _, their_port = rest.partition(":")
        nodes.append(Node(name, number, address, int(their_port) if their_port else port))
    return nodes


def _is_nodes(text):
    words = text.split()
    names = [w.partition(":")[0] for w in words]
    for word in words:
        name, sep, rest = word.partition(":")
        address, _, port = rest.partition(":")
        if not (sep and _is_node_name(name) and is_ipv4(address)
                and (not port or (port.isdigit() and 0 < int(port) < 65536))):
            return False
    return 0 < len(words) <= O2NM_MAX_NODES and len(set(names)) == len(names)


def _timing(name, sysconfig, minimum, shortdesc, text):
    """One of o2cb's timing settings (o2nm.TIMINGS) as a parameter: unset keeps the
    kernel's value; every node must use the same."""
    return ocf.Parameter(name, ocf.Integer(minimum=minimum, maximum=3600000),
                         shortdesc=shortdesc,
                         longdesc="o2cb's %s: %s. Unset: the kernel's value. The same on "
                                  "every node; applied when the cluster is registered, before "
                                  "the first mount." % (sysconfig, text))


class OCFS2Membership(ocf.ResourceAgent):
    name, version = "OCFS2Membership", "1.0"
    shortdesc = "OCFS2 o2cb cluster membership from the CIB"
    longdesc = (
        "Registers the o2cb cluster OCFS2 mounts with (configfs: /sys/kernel/config/cluster) "
        "from one list of nodes kept in the CIB, instead of /etc/ocfs2/cluster.conf on every "
        "node. Run it as a clone with notify=true, ordered before the OCFS2 Filesystem "
        "clones.")
    refused = ocf.Refusals("hasf.clusterlabs", "OCFS2_MEMBERSHIP")  # ClusterLabs' not taken
    parameters = (
        ocf.Parameter("cluster_name", Checked(_is_node_name, "letters, digits, '-', '_', '.'"),
                      default="ocfs2", shortdesc="o2cb cluster name",
                      longdesc="The o2cb cluster name (volumes made with --cluster-name must "
                               "name the same one)."),
        ocf.Parameter("nodes", Checked(_is_nodes, "space-separated name:IPv4[:port], each name "
                                                  "once"),
                      required=True, reloadable=True, shortdesc="Nodes",
                      longdesc="Every node that may mount the volumes: Pacemaker node name, "
                               "the IPv4 address o2net uses, optionally a port. Node numbers "
                               "follow the order; append new nodes at the end (they are added "
                               "online by a reload)."),
        ocf.Parameter("port", ocf.Integer(minimum=1, maximum=65535), default=DEFAULT_PORT,
                      shortdesc="o2net port", longdesc="o2net's TCP port for nodes that do not "
                                                       "name one."),
        _timing("heartbeat_threshold", "O2CB_HEARTBEAT_THRESHOLD", 3, "o2hb dead threshold",
                "a node whose disk heartbeat is not seen for (threshold - 1) * 2 seconds is "
                "declared dead and its locks recovered; the kernel's default is 31 (60 s)"),
        _timing("idle_timeout_ms", "O2CB_IDLE_TIMEOUT_MS", 1000, "o2net idle timeout (ms)",
                "a silent o2net connection is dropped after this long; the kernel's default "
                "is 30000; it cannot change while peers are connected"),
        _timing("keepalive_delay_ms", "O2CB_KEEPALIVE_DELAY_MS", 100,
                "o2net keepalive delay (ms)", "below idle_timeout_ms; the kernel's default "
                "is 2000"),
        _timing("reconnect_delay_ms", "O2CB_RECONNECT_DELAY_MS", 100,
                "o2net reconnect delay (ms)", "the kernel's default is 2000"),
    )
    actions = (ocf.Action("start", 60), ocf.Action("stop", 60),
               ocf.Action("monitor", 30, interval=20, depth=0), ocf.Action("notify", 30),
               ocf.Action("reload-agent", 30), ocf.Action("validate-all", 10))

    @property
    def o2nm(self):
        return NodeManager()

    @property
    def members(self):
        return parse_nodes(self.params.nodes, self.params.port)

    def local_name(self):
        from hasf.ocf.node import local_node_name

        return local_node_name(self.invocation, self.deadline)

    @property
    def timing(self):
        """The o2cb timing settings this resource sets ({name: int}; unset ones left out)."""
        return {name: getattr(self.params, name) for name in TIMINGS
                if getattr(self.params, name) is not None}

    def validate(self):
        timing = self.timing
        if "idle_timeout_ms" in timing and \
                timing.get("keepalive_delay_ms", 2000) >= timing["idle_timeout_ms"]:
            raise ocf.NotConfigured("keepalive_delay_ms (%d) must be below idle_timeout_ms (%d)"
                                    % (timing.get("keepalive_delay_ms", 2000),
                                       timing["idle_timeout_ms"]))
        if self.local_name() not in {n.name for n in self.members}:
            raise ocf.InvalidArgs("this node (%s) is not in nodes; o2cb must know it to mount"
                                  % self.local_name())

    # --- actions ------------------------------------------------------------------------
    def monitor(self):
        o2nm = self.o2nm
        cluster = self.params.cluster_name or "ocfs2"
        if not o2nm.available or cluster not in o2nm.clusters():
            return ocf.NOT_RUNNING
        local = o2nm.local(cluster)
        if local is None:
            return ocf.NOT_RUNNING  # registered, but o2net is not running for this node
        if self.params.nodes is not None and local != self.local_name():
            raise ocf.GenericError("o2cb cluster %s has %s as the local node, not %s"
                                   % (cluster, local, self.local_name()))
        return ocf.SUCCESS

    def start(self):
        self._load()
        cluster, o2nm = self.params.cluster_name, self.o2nm
        try:
            o2nm.register(cluster)
            changed = o2nm.set_timing(cluster, self.timing)
            if changed:
                self.log.info("o2cb cluster %s: %s" % (cluster, ", ".join(
                    "%s=%d" % (name, self.timing[name]) for name in changed)))
            for node in self.members:
                o2nm.add(cluster, node)
            if o2nm.local(cluster) is None:
                o2nm.set_local(cluster, self.local_name())
        except O2nmError as exc:
            raise ocf.GenericError(exc.message) from None
        self.log.info("o2cb cluster %s: %s, local %s" % (
            cluster, " ".join(map(repr, self.members)), self.local_name()))
        return None

    def notify(self):
        note = self.invocation.notification
        if not (note.is_post and note.operation == "start"):
            return None
        return self._add_missing(note.start_unames)

    def reload_agent(self):
        """`nodes` changed: register the new ones; nothing is restarted."""
        cluster, o2nm = self.params.cluster_name, self.o2nm
        if o2nm.available and cluster in o2nm.clusters():
            dropped = sorted(set(o2nm.nodes(cluster)) - {n.name for n in self.members})
            if dropped:
                self.log.warning("%s no longer in nodes but still registered in o2cb cluster "
                                 "%s: o2cb cannot remove a node online (a restart of the "
                                 "clone does)" % (", ".join(dropped), cluster))
        return self._add_missing({n.name for n in self.members})

    def _add_missing(self, names):
        cluster, o2nm = self.params.cluster_name, self.o2nm
        if cluster not in o2nm.clusters():
            return None  # not started here: nothing to extend
        known = {n.name: n for n in self.members}
        for name in sorted(names):
            if name not in known:
                self.log.error("%s started but is not in nodes: o2cb cannot let it mount"
                               % name)
                continue
            try:
                if o2nm.add(cluster, known[name]):
                    self.log.info("added %r to o2cb cluster %s" % (known[name], cluster))
            except O2nmError as exc:
                raise ocf.GenericError(exc.message) from None
        return None

    def stop(self):
        from hasf.kernel import namespaces

        cluster, o2nm = self.params.cluster_name or "ocfs2", self.o2nm
        if not o2nm.available or cluster not in o2nm.clusters():
            return None
        mounted = sorted({"%s (%r)" % (m.mount_point, view) for view, table in
                          namespaces.tables() for m in table if m.fstype == "ocfs2"})
        if mounted:  # in any mount namespace: a container's copy is a live mount too
            raise ocf.GenericError("OCFS2 is still mounted on %s: stop those Filesystem "
                                   "resources first" % ", ".join(mounted))
        if not self.deadline.wait_for(lambda: not o2nm.regions(cluster), 0.2, 1.0):
            raise ocf.GenericError("o2cb heartbeat regions %s are still active"
                                   % ", ".join(o2nm.regions(cluster)))
        try:
            o2nm.unregister(cluster)
        except O2nmError as exc:
            raise ocf.GenericError(exc.message) from None
        return None

    def _load(self):
        """o2nm loaded and configfs mounted (both are usually done by the o2cb service)."""
        import os

        from hasf.runner import CommandError, run

        if self.o2nm.available:
            return
        for argv in (["modprobe", "-q", "ocfs2_nodemanager"],
                     ["mount", "-t", "configfs", "configfs", "/sys/kernel/config"]):
            if self.o2nm.available:
                break
            try:
                run(argv, timeout=20, deadline=self.deadline, log=self.log)
            except CommandError as exc:
                self.log.debug("%s: %s" % (argv[0], exc.message))
        if not os.path.isdir(self.o2nm.root):
            raise ocf.NotInstalled("o2cb's node manager is not available (modprobe "
                                   "ocfs2_nodemanager; configfs on /sys/kernel/config)")


main = ocf.main_for(OCFS2Membership)
