"""O2CB's node manager (o2nm) as configfs shows it: the cluster OCFS2 mounts with.

OCFS2's classic stack keeps its membership in configfs:

    /sys/kernel/config/cluster/<cluster>/node/<name>/{num,ipv4_address,ipv4_port,local}
    /sys/kernel/config/cluster/<cluster>/heartbeat/<region>   (one per mounted volume)

Only one cluster can be registered per node; a node's number and address
must be the same on every node; writing `local` = 1 for this node (after its
number and address) starts o2net; the number itself is accepted only after
the address and port.  Nodes can be added while volumes are
mounted; o2hb's disk heartbeat then tells which of them are alive.

This module is what `o2cb register-cluster` does with /etc/ocfs2/cluster.conf,
done from the cluster's own configuration instead of a file on every node.
"""

import os

from hasf.errors import HasfError
from hasf.kernel.attrs import entries, is_directory, read_attr

CONFIGFS = "/sys/kernel/config"
#: o2cb's timing, as /etc/sysconfig/o2cb names it (O2CB_HEARTBEAT_THRESHOLD, ...): the
#: file under /sys/kernel/config/cluster/<cluster>/ that holds it.  Every node must use
#: the same values (o2net's handshake refuses a peer whose timeouts differ).
TIMINGS = {"keepalive_delay_ms": "keepalive_delay_ms",
           "idle_timeout_ms": "idle_timeout_ms",
           "reconnect_delay_ms": "reconnect_delay_ms",
           "heartbeat_threshold": "heartbeat/dead_threshold"}


class O2nmError(HasfError):
    """The node manager refused, or holds a configuration that conflicts with ours."""


class Node:
    __slots__ = ("name", "number", "address", "port")

    def __init__(self, name, number, address, port):
        self.name, self.number, self.address, self.port = name, number, address, port

    def __repr__(self):
        return "%s=%d@%s:%d" % (self.name, self.number, self.address, self.port)


def _write(path, value):
    try:
        with open(path, "w") as handle:
            handle.write("%s\n" % value)
    except OSError as exc:
        raise O2nmError("writing %s to %s: %s" % (value, path, exc.strerror)) from None


class NodeManager:
    """The o2nm tree under one configfs mount."""

    def __init__(self, configfs=CONFIGFS):
        self.root = os.path.join(configfs, "cluster")

    @property
    def available(self):
        """Whether o2nm is loaded and configfs mounted (the `cluster` directory exists)."""
        return is_directory(self.root)

    def clusters(self):
        return entries(self.root)

    def nodes(self, cluster):
        """{name: Node} registered in cluster."""
        base = os.path.join(self.root, cluster, "node")
        found = {}
        for name in entries(base):
            path = os.path.join(base, name)
            number, address, port = (read_attr(os.path.join(path, f))
                                     for f in ("num", "ipv4_address", "ipv4_port"))
            found[name] = Node(name, int(number) if number and number.isdigit() else -1,
                               address or "", int(port) if port and port.isdigit() else 0)
        return found

    def local(self, cluster):
        """The name of the node marked local, or None."""
        base = os.path.join(self.root, cluster, "node")
        for name in self.nodes(cluster):
            if read_attr(os.path.join(base, name, "local")) == "1":
                return name
        return None

    def regions(self, cluster):
        """Heartbeat regions (directories; the files beside them are o2hb's settings):
        one per OCFS2 volume mounted (or being mounted) here."""
        base = os.path.join(self.root, cluster, "heartbeat")
        return [n for n in entries(base) if is_directory(os.path.join(base, n))]

    # --- changes --------------------------------------------------------------------------
    def register(self, cluster):
        others = [c for c in self.clusters() if c != cluster]
        if others:
            raise O2nmError("o2cb allows one cluster per node and %s is registered here"
                            % ", ".join(others))
        path = os.path.join(self.root, cluster)
        if not os.path.isdir(path):
            try:
                os.mkdir(path)
            except OSError as exc:
                raise O2nmError("registering cluster %s: %s" % (cluster, exc.strerror)) \
                    from None

    def add(self, cluster, node):
        """Add node (idempotent); a node already there with other values is an error."""
        have = self.nodes(cluster).get(node.name)
        if have is not None:
            if (have.number, have.address, have.port) != (node.number, node.address,
                                                          node.port):
                raise O2nmError("node %s is registered as %r, the configuration says %r"
                                % (node.name, have, node))
            return False
        path = os.path.join(self.root, cluster, "node", node.name)
        try:
            os.mkdir(path)
        except OSError as exc:
            raise O2nmError("adding node %s: %s" % (node.name, exc.strerror)) from None
        try:
            # o2nm takes the number only once address and port are set (EINVAL otherwise)
            for attr, value in (("ipv4_port", node.port), ("ipv4_address", node.address),
                                ("num", node.number)):
                _write(os.path.join(path, attr), value)
        except O2nmError:
            os.rmdir(path)
            raise
        return True

    def timing(self, cluster):
        """{setting: int or None} of the cluster's o2net/o2hb timing (TIMINGS)."""
        found = {}
        for setting, relative in TIMINGS.items():
            value = read_attr(os.path.join(self.root, cluster, relative))
            found[setting] = int(value) if value and value.isdigit() else None
        return found

    def set_timing(self, cluster, wanted):
        """Write the settings of ``wanted`` ({setting: int}) that differ.  o2net keeps its
        keepalive below its idle timeout and refuses either change once a peer has
        connected, so they are written in the order that keeps keepalive < idle."""
        have = self.timing(cluster)
        order = list(TIMINGS)
        if wanted.get("idle_timeout_ms") is not None and \
                wanted["idle_timeout_ms"] > (have.get("idle_timeout_ms") or 0):
            order.remove("idle_timeout_ms")
            order.insert(0, "idle_timeout_ms")
        changed = []
        for setting in order:
            value = wanted.get(setting)
            if value is None or have.get(setting) == value:
                continue
            _write(os.path.join(self.root, cluster, TIMINGS[setting]), value)
            changed.append(setting)
        return changed

    def set_local(self, cluster, name):
        _write(os.path.join(self.root, cluster, "node", name, "local"), 1)

    def unregister(self, cluster):
        """Stop o2net (local = 0), remove every node, then the cluster."""
        base = os.path.join(self.root, cluster)
        if not os.path.isdir(base):
            return
        local = self.local(cluster)
        if local is not None:
            _write(os.path.join(base, "node", local, "local"), 0)
        for name in self.nodes(cluster):
            try:
                os.rmdir(os.path.join(base, "node", name))
            except OSError as exc:
                raise O2nmError("removing node %s: %s" % (name, exc.strerror)) from None
        try:
            os.rmdir(base)
        except OSError as exc:
            raise O2nmError("unregistering cluster %s: %s" % (cluster, exc.strerror)) from None
