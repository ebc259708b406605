"""Network namespaces, a bridge and veth pairs in a private /24, per run.

Why: a second libvirtd (libvirtd.py), and the tests' Pacemaker nodes and sshd
"hosts" each need their own network stack, and several pytest runs/workers
(and the lab) may do this concurrently on one machine.  So:

* names are ``hs<pid><kind><counter>`` (kind: n=netns, b=bridge, h=host-side
  veth), always <= 15 chars (IFNAMSIZ-1), never fixed global names;
* each ``Network`` leases one subnet ``10.213.X.0/24`` with an ``flock`` on
  ``/run/lock/hasf-netns/X.lock`` (released by the kernel if the process
  dies) and also skips any X already present on a host interface;
* the bridge lives in the host namespace with address ``.1`` so the host
  (tests, the system libvirtd, ssh clients) can reach every namespace; the
  namespaces get ``.11``, ``.12``, ... on their ``eth0``.  No default route is
  added anywhere: traffic never leaves these addresses.

``cleanup_stale()`` removes leftovers of runs whose pid no longer exists.
``NetnsService`` is a daemon helper living in one namespace of a Network,
its own (closed with it) or one it shares with others.
"""

import fcntl
import itertools
import os
import re
import subprocess
import threading

from lab.process import Service, pid_alive

_counter = itertools.count(1)
_counter_lock = threading.Lock()
_NAME_RE = re.compile(r"^hs(\d+)[nbh]\d+$")
LOCK_DIR = "/run/lock/hasf-netns"
SUBNET_BASE = "10.213"


def unique_name(kind):
    """Return a fresh interface/netns name ``hs<pid><kind><n>`` (<= 15 chars)."""
    with _counter_lock:
        n = next(_counter)
    name = "hs%d%s%d" % (os.getpid(), kind, n)
    if len(name) > 15:
        raise ValueError("name too long for an interface: %s" % name)
    return name


def ip(*args, timeout=10, check=True):
    """Run ``ip ARGS`` (bounded); raise with stderr on failure."""
    proc = subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError("ip %s failed: %s" % (" ".join(args), proc.stderr.strip()))
    return proc


def cleanup_stale():
    """Delete hs<pid>* namespaces/links whose creating process is gone."""
    for name in ip("netns", "list", check=False).stdout.split("\n"):
        name = name.split(" ")[0].strip()
        m = _NAME_RE.match(name)
        if m and not pid_alive(int(m.group(1))):
            ip("netns", "del", name, check=False)
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        parts = line.split(":")
        if len(parts) < 2:
            continue
        name = parts[1].strip().split("@")[0]
        m = _NAME_RE.match(name)
        if m and not pid_alive(int(m.group(1))):
            ip("link", "del", name, check=False)


class Namespace:
    """One network namespace attached to a Network's bridge."""

    def __init__(self, network, name, address, veth_host, ifname="eth0"):
        self.network = network
        self.name = name
        self.address = address
        self.veth_host = veth_host
        self.ifname = ifname

    def exec_argv(self, argv):
        """argv prefix running ``argv`` in this namespace (``ip netns exec``)."""
        return ["ip", "netns", "exec", self.name] + list(argv)

    def run(self, argv, timeout=10, **kwargs):
        """Run argv in this netns, bounded; returns CompletedProcess (text)."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(self.exec_argv(argv), timeout=timeout, **kwargs)

    def link_down(self):
        """Take eth0 down and drop its address (a crashed/unplugged host)."""
        ip("-n", self.name, "link", "set", self.ifname, "down", check=False)
        ip("-n", self.name, "addr", "flush", "dev", self.ifname, check=False)

    def link_up(self):
        """Restore eth0 with its address."""
        ip("-n", self.name, "addr", "replace", "%s/24" % self.address, "dev", self.ifname)
        ip("-n", self.name, "link", "set", self.ifname, "up")


class Network:
    """A bridge ``hs<pid>b<n>`` with host address X.1 and namespaces on it.

    Use as a context manager; ``close()`` deletes everything it created.
    """

    def __init__(self):
        self.bridge = None
        self.prefix = None      # e.g. "10.213.57"
        self.namespaces = []
        self._lock_fd = None
        self._next_host = 11

    # -- subnet lease ----------------------------------------------------
    def _lease_subnet(self):
        os.makedirs(LOCK_DIR, exist_ok=True)
        used = ip("-4", "-o", "addr", "show", check=False).stdout
        start = os.getpid() % 250
        for i in range(250):
            x = (start + i) % 250 + 1
            prefix = "%s.%d" % (SUBNET_BASE, x)
            if (" %s." % prefix) in used:
                continue
            fd = os.open(os.path.join(LOCK_DIR, "%d.lock" % x), os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._lock_fd = fd
            return prefix
        raise RuntimeError("no free %s.X.0/24 subnet" % SUBNET_BASE)

    @property
    def host_address(self):
        """The host's address on the bridge (X.1)."""
        return "%s.1" % self.prefix

    def create(self):
        cleanup_stale()
        self.prefix = self._lease_subnet()
        self.bridge = unique_name("b")
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", "%s/24" % self.host_address, "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        return self

    def add_namespace(self):
        """Create a netns with lo up and eth0 = next address on the bridge."""
        if self.bridge is None:
            self.create()
        ns = unique_name("n")
        veth = unique_name("h")
        address = "%s.%d" % (self.prefix, self._next_host)
        self._next_host += 1
        ip("netns", "add", ns)
        obj = Namespace(self, ns, address, veth)
        self.namespaces.append(obj)
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        ip("link", "set", veth, "master", self.bridge)
        ip("link", "set", veth, "up")
        ip("-n", ns, "link", "set", "lo", "up")
        obj.link_up()
        return obj

    def close(self):
        """Delete namespaces (their veths go with them), bridge, lease."""
        for obj in self.namespaces:
            ip("netns", "del", obj.name, check=False)
            ip("link", "del", obj.veth_host, check=False)
        self.namespaces = []
        if self.bridge:
            ip("link", "del", self.bridge, check=False)
            self.bridge = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc):
        self.close()


class NetnsService(Service):
    """A Service in a namespace of ``self.network`` (``self.ns``); ``self._own_network``
    says whether it made that Network itself (then it closes all of it)."""

    _own_network = False
    network = None
    ns = None

    def release_namespace(self):
        """Drop this helper's namespace, or the whole network when it made its own."""
        if self._own_network and self.network is not None:
            self.network.close()
            self.network = None
        elif self.ns is not None and self.network is not None:
            subprocess.run(["ip", "netns", "del", self.ns.name], timeout=10, capture_output=True)
