"""A real corosync 3 + Pacemaker cluster of N nodes on this one machine.

Why: hasf's resource agents, fence agents and CIB tools must be tested
against real pacemaker-execd / pacemaker-fenced / pacemaker-based, not
mocks.  Each node is an ``NsHost`` (lab.nsproc): its own network
namespace on a private bridge (lab.netns), private mount + UTS
namespace with fresh tmpfs on /run and /dev/shm, and bind mounts of per-node
directories (owned hacluster:haclient) over /var/lib/pacemaker,
/var/lib/corosync, /etc/corosync, /var/log/pacemaker and /var/log/corosync.
Nothing is shared with the host or with any other cluster running
concurrently.

Speed: corosync ``token: 1000``; an initial CIB (written before start, no
.sig needed - pacemaker-based only warns) sets ``dc-deadtime=1s`` and
``stonith-enabled=false`` (unless ``stonith_enabled=True``); the default
dc-deadtime of 20 s would dominate start-up.  Measured on this machine
(Debian 12, 2 cores, pacemaker 2.1.5, corosync 3.1.7), start() ->
wait_online() returning (all nodes online, DC elected and in S_IDLE):
1, 2 or 3 nodes 3.8-5.3 s (with dc-deadtime=2s: 6.0 s for 1 node, 4.8 s for
2-3 nodes).  kill_node(node2) -> node1 sees it offline ~= 2.2-3.4 s;
with stonith enabled, fence agent called ~= 3.3 s after the kill;
restart_node -> all online again ~= 3-4 s.

Usage::

    with PacemakerCluster(["node1", "node2"],
                          extra_binds=[(agents_dir, "/usr/lib/ocf/resource.d/hasf"),
                                       (fence_file, "/usr/sbin/fence_hasf_x")],
                          sbin_dir=dir_of_fence_agents) as c:
        c.wait_online(30)
        c.run("node1", ["crm_resource", "--list"])

* CLI tools must run through ``run()`` (nsenter into net+mount+uts): libqb
  IPC uses an abstract socket (netns) plus rings in the node's /dev/shm.
* ``extra_binds`` targets that do not exist (e.g. /usr/lib/ocf/resource.d/hasf
  or /usr/sbin/fence_x) are created inside the node only, via a writable
  overlay on the nearest existing parent; the host is never modified.
* ``sbin_dir``: every file of that host dir appears in the node's /usr/sbin
  (read-only overlay) - pacemaker-fenced only looks for fence_* there.
* Populate ``sbin_dir`` before start(): overlayfs does not promise to show
  files added to a lower dir later (extra_binds dirs are live bind mounts).
* Apart from those mounts a node sees the host's root filesystem (same
  /usr, /etc, /tmp): agents must not write outside /run, /var/lib/pacemaker
  or a dir the test owns.
* On an exception inside ``with`` the work dir (logs) is kept and its path is
  printed; ``log_dir`` / ``dump_logs()`` give access to it.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

from lab.netns import Network
from lab.nsproc import NsHost
from lab.process import wait_until

HACLUSTER = "hacluster"
HACLIENT = "haclient"
STATE_DIRS = {
    "/var/lib/pacemaker": ["cib", "pengine", "blackbox", "cores"],
    "/var/lib/corosync": [],
    "/etc/corosync": ["uidgid.d"],
    "/var/log/pacemaker": ["bundles"],
    "/var/log/corosync": [],
}


def _chown_tree(path):
    shutil.chown(path, HACLUSTER, HACLIENT)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            shutil.chown(os.path.join(root, name), HACLUSTER, HACLIENT)


class Node:
    """Bookkeeping of one cluster node."""

    def __init__(self, name, nodeid, ns, workdir):
        self.name = name
        self.nodeid = nodeid
        self.ns = ns                  # lab.netns.Namespace
        self.dir = workdir            # per-node dir on the host
        self.host = None              # lab.nsproc.NsHost while running
        self.procs = []

    @property
    def address(self):
        return self.ns.address


class PacemakerCluster:
    """Context manager: start a real cluster, tear everything down on exit."""

    def __init__(self, nodes=None, extra_binds=(), sbin_dir=None, env=None,
                 stonith_enabled=False, properties=None, cluster_name=None,
                 keep_dir=False):
        self.node_names = list(nodes or ["node1"])
        self.extra_binds = list(extra_binds)
        self.sbin_dir = sbin_dir
        self.env = dict(env or {})
        self.properties = {
            "stonith-enabled": "true" if stonith_enabled else "false",
            "dc-deadtime": "1s",
            "cluster-recheck-interval": "1min",
        }
        self.properties.update(properties or {})
        self.keep_dir = keep_dir
        self.workdir = None
        self.cluster_name = cluster_name or "hasf%d" % os.getpid()
        self.network = None
        self.nodes = {}
        self.started_at = None

    # -- paths -------------------------------------------------------------
    @property
    def log_dir(self):
        """Host dir (set by start()) holding ``<node>/log/{pacemaker,corosync}``
        and daemon stdout files (``<node>/corosync.out``, ``pacemakerd.out``)."""
        return self.workdir

    def dump_logs(self, lines=60):
        """Tail of every log file, for assertion messages on failure."""
        out = []
        for root, _dirs, files in os.walk(self.workdir or "/nonexistent"):
            for name in sorted(files):
                if name.endswith((".log", ".out")):
                    path = os.path.join(root, name)
                    with open(path, errors="replace") as f:
                        tail = f.readlines()[-lines:]
                    out.append("==> %s <==\n%s" % (path, "".join(tail)))
        return "\n".join(out)

    # -- configuration -------------------------------------------------------
    def _corosync_conf(self):
        nodes = "".join(
            "    node {\n        ring0_addr: %s\n        name: %s\n        nodeid: %d\n    }\n"
            % (n.address, n.name, n.nodeid) for n in self.nodes.values())
        two = "    two_node: 1\n" if len(self.nodes) == 2 else ""
        return (
            "totem {\n    version: 2\n    cluster_name: %s\n    transport: knet\n"
            "    token: 1000\n    crypto_cipher: none\n    crypto_hash: none\n}\n"
            "nodelist {\n%s}\n"
            "quorum {\n    provider: corosync_votequorum\n%s}\n"
            "logging {\n    to_logfile: yes\n    logfile: /var/log/corosync/corosync.log\n"
            "    to_stderr: no\n    to_syslog: no\n    timestamp: on\n}\n"
            "uidgid {\n    uid: %s\n    gid: %s\n}\n"
            % (self.cluster_name, nodes, two, HACLUSTER, HACLIENT))

    def _initial_cib(self):
        nv = "".join('<nvpair id="opt-%s" name="%s" value="%s"/>' % (k, k, v)
                     for k, v in sorted(self.properties.items()))
        return ('<cib validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">'
                '<configuration><crm_config><cluster_property_set id="cib-bootstrap-options">'
                '%s</cluster_property_set></crm_config><nodes/><resources/><constraints/>'
                '</configuration><status/></cib>\n' % nv)

    def _prepare_node_dirs(self, node):
        for target, subdirs in STATE_DIRS.items():
            base = os.path.join(node.dir, target.strip("/").replace("/", "_"))
            for sub in [""] + subdirs:
                os.makedirs(os.path.join(base, sub), exist_ok=True)
        etc = os.path.join(node.dir, "etc_corosync")
        with open(os.path.join(etc, "corosync.conf"), "w") as f:
            f.write(self._corosync_conf())
        cib = os.path.join(node.dir, "var_lib_pacemaker", "cib", "cib.xml")
        with open(cib, "w") as f:
            f.write(self._initial_cib())
        os.chmod(cib, 0o600)
        for target in STATE_DIRS:
            _chown_tree(os.path.join(node.dir, target.strip("/").replace("/", "_")))
        # convenient symlink so "the logs" are at <node>/log/{pacemaker,corosync}
        logdir = os.path.join(node.dir, "log")
        if not os.path.exists(logdir):
            os.makedirs(logdir)
            os.symlink("../var_log_pacemaker", os.path.join(logdir, "pacemaker"))
            os.symlink("../var_log_corosync", os.path.join(logdir, "corosync"))

    # -- start/stop ------------------------------------------------------------
    def start(self):
        self.started_at = time.monotonic()
        self.workdir = tempfile.mkdtemp(prefix="hasf-pcmk-")
        os.chmod(self.workdir, 0o755)
        self.network = Network().create()
        for i, name in enumerate(self.node_names, 1):
            ndir = os.path.join(self.workdir, name)
            os.makedirs(ndir)
            self.nodes[name] = Node(name, i, self.network.add_namespace(), ndir)
        for node in self.nodes.values():
            self._prepare_node_dirs(node)
        for node in self.nodes.values():
            self._boot(node)
        return self

    def _daemon_env(self):
        env = {"PCMK_logfile": "/var/log/pacemaker/pacemaker.log",
               "PCMK_logfacility": "none", "PCMK_debug": "no"}
        env.update(self.env)
        return env

    def _boot(self, node):
        scratch = tempfile.mkdtemp(prefix="ns-", dir=node.dir)
        host = NsHost(node.ns.name, node.name, scratch).start()
        node.host = host
        host.mount_tmpfs("/run")
        host.run(["mkdir", "-p", "/run/lock", "/run/crm"], check=True)
        host.mount_tmpfs("/dev/shm", mode="1777")
        for target in STATE_DIRS:
            host.bind(os.path.join(node.dir, target.strip("/").replace("/", "_")), target)
        if self.sbin_dir:   # before extra_binds, or it would hide binds under /usr/sbin
            host.overlay_lower(os.path.abspath(self.sbin_dir), "/usr/sbin")
        for src, dst in self.extra_binds:
            host.bind(os.path.abspath(src), dst)
        env = self._daemon_env()
        node.procs = [host.popen(["corosync", "-f", "-c", "/etc/corosync/corosync.conf"],
                                 os.path.join(node.dir, "corosync.out"), env)]

        def corosync_up():
            if node.procs[0].poll() is not None:
                raise RuntimeError("corosync on %s exited:\n%s" % (node.name, self.dump_logs(20)))
            return host.run(["corosync-cmapctl", "-g", "totem.cluster_name"],
                            timeout=5).returncode == 0
        wait_until(corosync_up, 15, 0.1, "corosync on %s" % node.name)
        node.procs.append(host.popen(["pacemakerd", "-f"],
                                     os.path.join(node.dir, "pacemakerd.out"), env))

    def stop(self):
        """Kill every process of every node, delete namespaces and (unless
        keep_dir) the work dir.  Safe to call twice."""
        for node in self.nodes.values():
            self._kill(node)
        if self.network is not None:
            self.network.close()
            self.network = None
        if not self.keep_dir and self.workdir and os.path.isdir(self.workdir):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _kill(self, node):
        if node.host is not None:
            node.host.kill_all()
            node.host = None
        for p in node.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        node.procs = []

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.keep_dir = True
            sys.stderr.write("PacemakerCluster start failed; logs kept in %s\n" % self.workdir)
            self.stop()
            raise

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.keep_dir = True
            sys.stderr.write("PacemakerCluster: logs kept in %s\n" % self.workdir)
        self.stop()

    # -- crash simulation ------------------------------------------------------
    def kill_node(self, name):
        """kill -9 every process of the node (corosync, pacemaker daemons,
        agents) and take its link down: a power cut."""
        node = self.nodes[name]
        self._kill(node)
        node.ns.link_down()

    def restart_node(self, name):
        """Boot a killed (or running) node again: fresh /run and /dev/shm,
        same persistent /var/lib/pacemaker (like a disk).  Does not wait."""
        node = self.nodes[name]
        self._kill(node)
        node.ns.link_up()
        self._boot(node)

    # -- tools -------------------------------------------------------------------
    def run(self, node, argv, input=None, env=None, timeout=30, check=False):
        """Run a CLI tool inside ``node`` (net+mount+uts); CompletedProcess."""
        host = self.nodes[node].host
        if host is None:
            raise RuntimeError("node %s is not running" % node)
        return host.run(argv, input=input, env=env, timeout=timeout, check=check)

    def cib_xml(self, node=None, scope=None):
        """The live CIB as XML text (``cibadmin -Q``)."""
        node = node or self.node_names[0]
        argv = ["cibadmin", "-Q"] + (["-o", scope] if scope else [])
        return self.run(node, argv, timeout=15, check=True).stdout

    def status(self, node=None):
        """Parsed ``crm_mon -1 --output-as=xml`` (ElementTree root)."""
        node = node or self.running_nodes()[0]
        proc = self.run(node, ["crm_mon", "-1", "--output-as=xml"], timeout=15)
        return ET.fromstring(proc.stdout)

    def running_nodes(self):
        return [n for n, obj in self.nodes.items() if obj.host is not None]

    def online_nodes(self, node=None):
        root = self.status(node)
        return sorted(n.get("name") for n in root.iter("node") if n.get("online") == "true"
                      and n.get("type", "member") == "member")

    def dc(self, node=None):
        """Name of the DC, or None."""
        root = self.status(node)
        cur = root.find("./summary/current_dc")
        if cur is not None and cur.get("present") == "true":
            return cur.get("name")
        return None

    def wait_online(self, timeout=60, nodes=None, idle=True):
        """Wait until exactly ``nodes`` (default: all running ones) are seen
        online by each of them (others offline), a DC is elected and (idle=True) the DC's controller is in S_IDLE.
        Returns seconds since start()."""
        want = sorted(nodes or self.running_nodes())

        def ready():
            for probe in want:
                if self.online_nodes(probe) != want:
                    return False
            dc = self.dc(want[0])
            if not dc:
                return False
            if idle:
                out = self.run(want[0], ["crmadmin", "-S", dc, "-t", "2s"], timeout=10).stdout
                return "S_IDLE" in out
            return True
        try:
            wait_until(ready, timeout, 0.25, "cluster %s online" % want)
        except AssertionError as exc:
            raise AssertionError("%s\n%s" % (exc, self.dump_logs(30))) from exc
        return time.monotonic() - self.started_at
