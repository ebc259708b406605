"""The lab's two-node cluster: two node guests, their BMCs, corosync 3 + Pacemaker 2.1, hasf.

Why: the seed's Step Seven only means something on a real cluster, so the
lab builds one on this machine from the same parts a real one has: each
node is a Debian 12 guest (lab/node.py) with Debian's corosync and
Pacemaker, hasf installed by ``make install DESTDIR=... PYTHON=/usr/bin/python3``
(the one install path), and power through its own BMC (lab/bmc.py), and the
whole configuration comes from one hasf-cib spec (lab/hasf-lab.toml)
applied with ``hasf-cib apply`` on node1.  The spec is also where the lab
reads the node names and each BMC's port (its fence device's ``ipport``),
so the fence devices and the BMCs cannot disagree.

The cluster keeps running while the ``Cluster`` is open (a context
manager); ``stop()`` powers everything off and, unless ``keep=True``,
removes the lab directory.  Each BMC is also started under
``timeout -s KILL lifetime``, so a lab process that dies without stop()
leaves no guest running for longer than that.

Pacemaker's view is read with ``crm_mon --output-as=xml`` through a node's
control channel; the crash test (lab/crash.py) does not trust it alone.
"""

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

from lab.bmc import NodeBmc
from lab.domain_power import DomainPower, HostSshd
from lab.image import guest_image
from lab.node import Node, NodeError
from lab.process import Service, WaitTimeout, wait_until
from lab.qemu import free_udp_port
from lab.san import SanDisk
from lab.vm1 import Vm1

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the lab host is Debian 12 (3.11)
    import tomli as tomllib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(REPO, "lab", "hasf-lab.toml")
LAN_PREFIX = "192.168.10."          # the corosync link between the two qemus
NODE_PYTHON = "/usr/bin/python3"    # Debian's interpreter in the nodes

COROSYNC_CONF = """\
totem {
    version: 2
    cluster_name: %(name)s
    transport: knet
    token: %(token)d
    crypto_cipher: none
    crypto_hash: none
}
nodelist {
%(nodes)s}
quorum {
    provider: corosync_votequorum
    two_node: 1
}
logging {
    to_logfile: yes
    logfile: /var/log/corosync/corosync.log
    to_stderr: no
    to_syslog: no
    timestamp: on
}
"""
#: daemons every node starts before its cluster stack (the SAN node adds tgtd)
NODE_SERVICES = ("udevd", "iscsid", "virtlogd", "libvirtd")
NODE_MODULES = ("iscsi_tcp", "sd_mod")
#: libvirt's qemu driver runs qemu as root in the lab (no libvirt-qemu user without
#: libvirt-daemon-system); no security driver (the image has no AppArmor/SELinux)
QEMU_CONF = 'user = "root"\ngroup = "root"\nsecurity_driver = "none"\n'
#: the nodes know each other's host key only from the first connection (same image)
SSH_CONFIG = ("Host node1 node2\n    StrictHostKeyChecking accept-new\n"
              "    UserKnownHostsFile /root/.ssh/known_hosts\n    ConnectTimeout 10\n")
#: the node domains' names on the host's libvirtd (libvirt power)
DOMAIN_PREFIX = "hasf-lab-"
NODE_STANZA = "    node {\n        ring0_addr: %s\n        name: %s\n        nodeid: %d\n    }\n"


class ClusterError(RuntimeError):
    """The lab cluster did not come up or could not be configured."""


class LabSpec:
    """What the lab reads from its spec: names, BMC ports, the SAN node, stores, vm1."""

    def __init__(self, path=SPEC):
        with open(path, "rb") as handle:
            spec = tomllib.load(handle)
        self.path = path
        self.name = spec["cluster"].get("name", "hasf-lab")
        self.nodes = list(spec["cluster"]["nodes"])
        if len(self.nodes) != 2:
            raise ClusterError("the lab runs exactly two nodes, the spec names %r" % self.nodes)
        self.bmc_ports = {}
        for device in spec.get("fence", []):
            if "ipmi" not in device["agent"]:
                continue        # the BMCs are what the IPMI devices point at
            for host in device.get("hosts", []):
                self.bmc_ports[host] = int(device.get("params", {}).get("ipport", 623))
        missing = [n for n in self.nodes if n not in self.bmc_ports]
        if missing and self.bmc_ports:
            raise ClusterError("no fence device with an ipport for %s in %s" % (missing, path))
        san = spec.get("san") or {}
        self.san_node = san.get("node")
        self.san_iqn = san.get("iqn")
        #: tgt needs tgtd running on the SAN node; LIO is the kernel's (the agent loads it)
        self.san_implementation = san.get("implementation", "tgt")
        #: [san.chap]'s password files: the lab writes a fresh secret into each, on every node
        chap = san.get("chap") or {}
        self.chap_files = [chap[k] for k in ("password-file", "target-password-file")
                           if k in chap]
        self.stores = {s["name"]: s["directory"] for s in spec.get("store", [])}
        self.vms = {v["name"]: v for v in spec.get("vm", [])}
        self.fences = [f["name"] for f in spec.get("fence", [])]
        self.fence_agents = sorted({f["agent"] for f in spec.get("fence", [])})
        #: "power": the devices cut power (a new qemu); "reboot": software fencing makes
        #: the node reboot itself (fence_hasf_demo), the same qemu boots again
        self.fence_kind = "reboot" if self.fence_agents == ["fence_hasf_demo"] else "power"
        #: what powers the nodes: their BMCs, or libvirt domains on the host (the lab's
        #: sshd on the port the fence device's qemu+ssh URI names lets the nodes reach it)
        self.power = "bmc"
        self.sshd_port = None
        for device in spec.get("fence", []):
            if device["agent"] == "fence_hasf_libvirt":
                self.power = "domain"
                uri = device.get("params", {}).get("uri", "")
                port = uri.partition("://")[2].partition("/")[0].rpartition(":")[2]
                self.sshd_port = int(port) if port.isdigit() else 22
        if not self.bmc_ports:
            self.bmc_ports = {n: 16230 + i + 1 for i, n in enumerate(self.nodes)}


#: roles of a resource that is up (not Starting, Stopping, Migrating: pending operations)
RUNNING_ROLES = ("Started", "Promoted", "Unpromoted", "Master", "Slave")


def crm_status(text):
    """Parse ``crm_mon --output-as=xml``: {"dc": name, "nodes": {name: {...}},
    "resources": {id: [node, ...]}} (a resource's list holds the nodes it runs on: active,
    not failed, no operation pending)."""
    root = ET.fromstring(text)
    dc = root.find("summary/current_dc")
    status = {"dc": dc.get("name") if dc is not None and dc.get("present") == "true" else None,
              "nodes": {}, "resources": {}}
    for node in root.iter("node"):
        if node.get("online") is None:
            continue   # a resource's <node name=...> element
        status["nodes"][node.get("name")] = {
            key: node.get(key) == "true" for key in ("online", "unclean", "pending", "standby")}
    for resource in root.iter("resource"):
        where = [n.get("name") for n in resource.findall("node")]
        if resource.get("active") == "true" and resource.get("failed") != "true" and \
                resource.get("role") in RUNNING_ROLES:
            status["resources"].setdefault(resource.get("id"), []).extend(where)
    return status


class Cluster(Service):
    """Two node guests with BMCs, forming one Pacemaker cluster (module docstring)."""

    def __init__(self, spec=SPEC, directory=None, keep=False, lifetime=3600, memory=1024,
                 token=3000, say=None):
        self.spec = spec
        self.lab = LabSpec(spec)
        self.name, self.names, self.bmc_ports = self.lab.name, self.lab.nodes, self.lab.bmc_ports
        self.dir = directory
        self.keep = keep
        self.lifetime = lifetime
        self.memory = memory
        self.token = token
        self.say = say or (lambda message: None)
        self.nodes = {}
        self.bmcs = {}
        self.timings = {}
        self.san_disk = None
        self.sshd = None            # the lab's host sshd (libvirt power only)
        self.vm = Vm1()
        self._made_dir = False

    # -- building ---------------------------------------------------------------------
    def _install_tree(self):
        """``make install`` into a staging root the nodes lay over / at every boot."""
        root = os.path.join(self.dir, "install")
        result = subprocess.run(["make", "-s", "-C", REPO, "install", "DESTDIR=" + root,
                                 "PYTHON=" + NODE_PYTHON, "BASE_PYTHON=" + NODE_PYTHON],
                                capture_output=True, text=True, timeout=300,
                                stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise ClusterError("make install failed:\n%s%s" % (result.stdout, result.stderr))
        return root

    def _prepare(self):
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="hasf-lab-")
            self._made_dir = True
        os.chmod(self.dir, 0o755)
        image = guest_image()
        key = os.path.join(self.dir, "id_ed25519")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hasf-lab",
                        "-f", key], check=True, capture_output=True, timeout=30,
                       stdin=subprocess.DEVNULL)
        install = self._install_tree()
        addresses = {name: LAN_PREFIX + str(i + 1) for i, name in enumerate(self.names)}
        corosync = COROSYNC_CONF % {"name": self.name, "token": self.token, "nodes": "".join(
            NODE_STANZA % (addresses[n], n, i + 1) for i, n in enumerate(self.names))}
        passwords = {name: secrets.token_hex(8) for name in self.names}
        chap_secrets = {path: secrets.token_hex(12) for path in self.lab.chap_files}
        self.san_disk = SanDisk(os.path.join(self.dir, "san.img")).make()
        with open(key) as handle:
            private_key = handle.read()
        if self.lab.power == "domain":
            self.sshd = HostSshd(os.path.join(self.dir, "sshd"), self.lab.sshd_port, key + ".pub",
                                 self.lifetime).start()
        ports = [free_udp_port(), free_udp_port()]
        while ports[1] == ports[0]:
            ports[1] = free_udp_port()
        for i, name in enumerate(self.names):
            san = name == self.lab.san_node
            node = Node(name, os.path.join(self.dir, name), image, addresses[name] + "/24",
                        ports[i], ports[1 - i], addresses, key, memory=self.memory,
                        disks=[(self.san_disk.path, "san0")] if san else [],
                        services=NODE_SERVICES + (("tgtd",) if san and
                                                  self.lab.san_implementation == "tgt" else ()),
                        modules=NODE_MODULES, no_reboot=self.lab.fence_kind == "power")
            node.add_file("/etc/corosync/corosync.conf", corosync)
            node.add_file("/etc/iscsi/initiatorname.iscsi",
                          "InitiatorName=iqn.2006-06.org.hasf.lab:%s\n" % name, 0o600)
            node.add_file("/etc/libvirt/qemu.conf", QEMU_CONF)
            # live migration between the nodes: qemu+ssh as root over the node link
            node.add_file("/root/.ssh/id_ed25519", private_key, 0o600)
            node.add_file("/root/.ssh/config", SSH_CONFIG, 0o600)
            if self.sshd is not None:   # fence_hasf_libvirt checks the host's sshd key
                node.add_file("/root/.ssh/known_hosts", self.sshd.known_hosts_line(), 0o600)
            for path, secret in chap_secrets.items():
                node.add_file(path, secret + "\n", 0o600)
            for other in self.names:
                node.add_file("/etc/hasf/bmc-%s" % other, passwords[other] + "\n", 0o600)
                # fence_ipmilan's password_script (the ClusterLabs lab spec): prints it
                node.add_file("/etc/hasf/bmc-%s.sh" % other,
                              "#!/bin/sh\nexec cat /etc/hasf/bmc-%s\n" % other, 0o700)
            node.prepare(install_tree=install)
            shutil.copyfile(self.spec, os.path.join(node.share, "hasf-lab.toml"))
            self.nodes[name], self.bmcs[name] = node, self._power(node, passwords[name])

    def _power(self, node, password):
        """The node's power: its BMC (the qemu is the BMC's), or its libvirt domain."""
        if self.lab.power == "domain":
            power = DomainPower(node.name, DOMAIN_PREFIX + node.name,
                                os.path.join(self.dir, "domain-" + node.name), self.lifetime)
            power.xml = node.domain_xml(power.domain)
            return power
        bmc = NodeBmc(node.name, os.path.join(self.dir, "bmc-" + node.name),
                      port=self.bmc_ports[node.name], password=password, lifetime=self.lifetime)
        bmc.qemu_argv = node.qemu_argv(bmc.serial_port, bmc.pidfile)
        return bmc

    def start(self):
        """Build, power both nodes on, wait until both are Online, apply the spec."""
        self._prepare()
        started = time.monotonic()
        if self.lab.power == "domain":
            self.say("powering on %s as libvirt domains of the host's qemu:///system (the "
                     "nodes reach it through the lab's sshd on 127.0.0.1:%d)" % (
                         " and ".join(self.names), self.lab.sshd_port))
        else:
            self.say("powering on %s through their BMCs (ipmi_sim on 127.0.0.1:%s)" % (
                " and ".join(self.names), "/".join(str(self.bmc_ports[n]) for n in self.names)))
        for name in self.names:
            self.bmcs[name].start()
        for name in self.names:
            self.nodes[name].wait_answers(240)
        if self.lab.fence_kind == "reboot":
            self._known_hosts()
        self.timings["ssh_s"] = round(time.monotonic() - started, 1)
        self.say("both nodes answer on ssh after %.1fs" % self.timings["ssh_s"])
        self.wait_online(self.names, via=self.names[0], timeout=240)
        self.timings["online_s"] = round(time.monotonic() - started, 1)
        self.say("both nodes Online after %.1fs" % self.timings["online_s"])
        self.apply_spec()
        self.wait_placed(self.storage_placement(), timeout=300)
        self.timings["configured_s"] = round(time.monotonic() - started, 1)
        self.say("spec applied: fencing, SAN on %s, initiators, o2cb and both stores on both "
                 "nodes after %.1fs" % (self.lab.san_node, self.timings["configured_s"]))
        self.start_vms()
        self.timings["vm_s"] = round(time.monotonic() - started, 1)
        self.say("Step Five: %s installed on the stores and started on %s after %.1fs" % (
            ", ".join(self.lab.vms), self.names[0], self.timings["vm_s"]))
        return self

    def storage_placement(self):
        """{resource id: nodes it must be active on (None: any one)} once the spec's
        storage is up."""
        both = set(self.names)
        want = {fence: None for fence in self.lab.fences}      # started, anywhere
        want.update({"san-target": {self.lab.san_node}, "san-lun1": {self.lab.san_node},
                     "iscsi-initiator": both, "ocfs2-membership": both})
        want.update({store: both for store in self.lab.stores})
        return want

    def start_vms(self):
        """Step Five: each VM's XML and image on the stores (through the first node),
        then its target-role set to Started; wait until it runs where it prefers."""
        first = self.nodes[self.names[0]]
        for node in self.nodes.values():
            wait_until(lambda node=node: node.ssh(["virsh", "-c", "qemu:///system", "version"],
                                        timeout=60).returncode == 0, 240, 2.0,
                       "libvirtd answering on %s" % node.name)
        for name, vm in self.lab.vms.items():
            self.vm.install(first)
            result = first.ssh(["crm_resource", "--resource", name, "--meta",
                                "--set-parameter", "target-role", "--parameter-value",
                                "Started"], timeout=60)
            if result.returncode != 0:
                raise ClusterError("starting %s: %s" % (name, result.stderr.strip()))
            self.wait_placed({name: {vm.get("prefer", self.names[0])}}, timeout=240)

    def clean_stop(self, timeout=300):
        """Stop every resource through Pacemaker (stop-all-resources) and wait until
        none is active, so the stores are cleanly unmounted before the power goes."""
        via = self.names[1]
        result = self.nodes[via].ssh(["crm_attribute", "--type", "crm_config", "--name",
                                      "stop-all-resources", "--update", "true"], timeout=60)
        if result.returncode != 0:
            raise ClusterError("stop-all-resources: %s" % result.stderr.strip())
        try:
            wait_until(lambda: not any(self.status(via)["resources"].values()), timeout, 2.0,
                       "every resource stopped")
        except WaitTimeout as exc:
            raise ClusterError("%s\n%s" % (exc, self.diagnostics())) from exc

    def _known_hosts(self):
        """/etc/hasf/known_hosts in every node, for fence_hasf_demo's strict host key
        check: each node's key (ssh-keyscan through its control channel) under its
        address on the node link."""
        lines = []
        for name, node in self.nodes.items():
            scan = subprocess.run(["ssh-keyscan", "-t", "ed25519", "-p", str(node.ssh_port),
                                   "127.0.0.1"], capture_output=True, text=True, timeout=30,
                                  stdin=subprocess.DEVNULL)
            keys = [line.split(None, 1)[1] for line in scan.stdout.splitlines()
                    if line and not line.startswith("#")]
            if not keys:
                raise ClusterError("ssh-keyscan of %s found no key: %s" % (name, scan.stderr))
            lines.append("%s %s" % (node.lan_address.split("/")[0], keys[0]))
        for node in self.nodes.values():
            node.ssh(["mkdir", "-p", "/etc/hasf"], timeout=30, check=True)
            node.ssh(["dd", "of=/etc/hasf/known_hosts", "status=none"], timeout=30,
                     input="\n".join(lines) + "\n", check=True)

    def stop(self):
        for bmc in self.bmcs.values():
            bmc.stop()
        if self.sshd is not None:
            self.sshd.stop()
        if self._made_dir and not self.keep and self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- Pacemaker's view -----------------------------------------------------------------
    def status(self, via):
        """crm_status() as node ``via`` sees it (bounded)."""
        result = self.nodes[via].ssh(["crm_mon", "-1", "--output-as=xml"], timeout=30)
        if result.returncode != 0:
            raise ClusterError("%s: crm_mon rc=%d: %s" % (via, result.returncode,
                                                          result.stderr.strip()[-500:]))
        return crm_status(result.stdout)

    def online(self, via):
        """Names of the nodes ``via`` sees Online (not unclean, not pending)."""
        nodes = self.status(via)["nodes"]
        return sorted(n for n, s in nodes.items()
                      if s["online"] and not s["unclean"] and not s["pending"])

    def wait_online(self, names, via, timeout):
        try:
            wait_until(lambda: set(names) <= set(self.online(via)), timeout, 2.0,
                       "%s Online as %s sees it" % (", ".join(names), via))
        except WaitTimeout as exc:
            raise ClusterError("%s\n%s" % (exc, self.diagnostics())) from exc

    def wait_placed(self, want, timeout, via=None):
        """Wait until each resource id is active on (at least) the nodes given for it
        (None: on some node)."""
        via = via or self.names[0]

        def placed():
            where = self.status(via)["resources"]
            return all(where.get(rsc) if nodes is None else nodes <= set(where.get(rsc, ()))
                       for rsc, nodes in want.items())
        try:
            wait_until(placed, timeout, 2.0, "%s placed" % ", ".join(sorted(want)))
        except WaitTimeout as exc:
            raise ClusterError("%s\n%s" % (exc, self.diagnostics())) from exc

    def wait_resources(self, ids, timeout, via=None):
        via = via or self.names[0]
        try:
            wait_until(lambda: all(self.status(via)["resources"].get(i) for i in ids),
                       timeout, 2.0, "resources %s started" % ", ".join(ids))
        except WaitTimeout as exc:
            raise ClusterError("%s\n%s" % (exc, self.diagnostics())) from exc

    # -- configuration ----------------------------------------------------------------------
    def apply_spec(self, via=None):
        """``hasf-cib apply`` of the lab spec on a live node (the spec is in its share)."""
        via = via or self.names[0]
        result = self.nodes[via].ssh(["hasf-cib", "apply", "/mnt/hasf/hasf-lab.toml"],
                                     timeout=180)
        if result.returncode != 0:
            raise ClusterError("hasf-cib apply on %s failed rc=%d:\n%s%s" % (
                via, result.returncode, result.stdout, result.stderr))
        return result.stdout + result.stderr

    # -- diagnostics ------------------------------------------------------------------------
    def node_logs(self, name, lines=40):
        """The tail of a node's pacemaker and corosync logs (empty when it does not answer)."""
        try:
            result = self.nodes[name].ssh(["tail", "-n", str(lines),
                                           "/var/log/pacemaker/pacemaker.log",
                                           "/var/log/corosync/corosync.log"], timeout=20)
            return result.stdout
        except NodeError as exc:
            return str(exc)

    def failures(self, name):
        """What failed on a node and why: crm_mon's failed actions (with their exit
        reasons) and the agents' own error lines from pacemaker.log (fenced and execd log
        an agent's stderr there)."""
        out = []
        for argv in (["crm_mon", "-1", "--show-detail", "--include=failures"],
                     ["grep", "-E", "-e", "stderr|exit-reason|error:", "-m", "40",
                      "/var/log/pacemaker/pacemaker.log"]):
            try:
                out.append(self.nodes[name].ssh(argv, timeout=20).stdout)
            except NodeError as exc:
                out.append(str(exc))
        return "\n".join(out)

    def diagnostics(self):
        return "\n".join("%s\n%s\n-- %s failures:\n%s" % (
            self.nodes[n].diagnostics(), self.node_logs(n), n, self.failures(n))
            for n in self.names)
