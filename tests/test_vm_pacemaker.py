"""VirtualMachine under a real single-node Pacemaker (corosync + pacemakerd, support.pacemaker).

The agent is mounted at /usr/lib/ocf/resource.d/hasf inside the node, and its
hypervisor URI names the host's libvirtd socket, so pacemaker-execd runs it
against the real qemu:///system libvirtd.  The resource is created from hand-written CIB XML, started,
monitored by pacemaker-execd; destroying the domain behind Pacemaker's back
is detected by the recurring monitor and recovered (restarted); finally the
resource is stopped through target-role.
"""

import os
import re
from xml.sax.saxutils import quoteattr

import pytest

from test_vm_common import (SYSTEM_URI, agent_path, domains, domstate,  # noqa: F401
                            system_libvirtd, virsh, workdir, write_config)

RESOURCE = """\
<primitive id="vm1" class="ocf" provider="hasf" type="VirtualMachine">
  <instance_attributes id="vm1-ia">
    <nvpair id="vm1-config" name="config" value=%s/>
    <nvpair id="vm1-hypervisor" name="hypervisor" value=%s/>
    <nvpair id="vm1-share" name="shutdown_timeout_share" value="10"/>
    <nvpair id="vm1-uhost" name="autoset_utilization_host_memory" value="false"/>
    <nvpair id="vm1-unhost" name="unset_utilization_host_memory" value="true"/>
  </instance_attributes>
  <utilization id="vm1-utilization">
    <nvpair id="vm1-utilization-host_memory" name="host_memory" value="999"/>
  </utilization>
  <meta_attributes id="vm1-meta">
    <nvpair id="vm1-allow-migrate" name="allow-migrate" value="true"/>
  </meta_attributes>
  <operations>
    <op id="vm1-start" name="start" interval="0s" timeout="90s"/>
    <op id="vm1-stop" name="stop" interval="0s" timeout="30s"/>
    <op id="vm1-monitor" name="monitor" interval="2s" timeout="30s"/>
  </operations>
</primitive>
"""


# The node's /run is a private tmpfs, so the host's libvirtd socket is reached through this
# (host) process's root.  (A bind mount of /run/libvirt would not do: mount(8) inside the
# node canonicalises /proc/PID/root/... back to the node's own /run.)
HOST_URI = "qemu+unix:///system?socket=/proc/%d/root/run/libvirt/libvirt-sock" % os.getpid()


@pytest.fixture
def cluster(agent_path, system_libvirtd):  # noqa: F811
    from support.pacemaker import PacemakerCluster

    binds = [(os.path.dirname(agent_path), "/usr/lib/ocf/resource.d/hasf")]
    with PacemakerCluster(["node1"], extra_binds=binds) as c:
        c.wait_online(60)
        yield c


def _resource_state(cluster):
    root = cluster.status()
    for res in root.iter("resource"):
        if res.get("id") == "vm1":
            nodes = [n.get("name") for n in res.iter("node")]
            return res.get("role"), res.get("failed"), nodes
    return None, None, []


def _failcount(cluster):
    out = cluster.run("node1", ["crm_failcount", "--query", "-r", "vm1", "-N", "node1"]).stdout
    match = re.search(r"value=(\d+|INFINITY)", out)
    return match.group(1) if match else "0"


def _qemu_pid(name):
    from hasf.agents.vm_procs import qemu_processes

    pids = qemu_processes(name)
    return pids[0] if len(pids) == 1 else None


def test_pacemaker_starts_monitors_recovers_and_stops(cluster, domains, workdir):  # noqa: F811
    from lab.process import wait_until

    name = domains.new("pcmk")
    config = write_config(workdir, name)
    created = cluster.run("node1", ["cibadmin", "-C", "-o", "resources", "-X",
                                    RESOURCE % (quoteattr(config), quoteattr(HOST_URI))], timeout=30)
    assert created.returncode == 0, created.stderr

    def started():
        role, _failed, nodes = _resource_state(cluster)
        return role == "Started" and nodes == ["node1"] and \
            domstate(SYSTEM_URI, name) == "running"
    try:
        wait_until(started, 60, 0.5, "vm1 started by pacemaker")
        first_pid = _qemu_pid(name)
        assert first_pid
        # utilization set on start, by default as VirtualDomain does (cpu, hv_memory), and
        # removed where asked (unset_utilization_host_memory).  Mutation: autoset_utilization_*
        # default false, or _set_utilization ignoring unset_utilization_*.
        for attr, value in (("cpu", "1"), ("hv_memory", "64")):
            got = cluster.run("node1", ["crm_resource", "-r", "vm1", "-z", "-g", attr]).stdout
            assert got.strip() == value, (attr, got)
        gone = cluster.run("node1", ["crm_resource", "-r", "vm1", "-z", "-g", "host_memory"])
        assert "999" not in gone.stdout, gone.stdout

        # monitor failure injected behind pacemaker's back: detected and recovered
        assert virsh(SYSTEM_URI, "destroy", name).returncode == 0
        wait_until(lambda: _failcount(cluster) == "1", 30, 0.5, "monitor failure recorded")
        wait_until(lambda: started() and _qemu_pid(name) not in (None, first_pid), 60, 0.5,
                   "vm1 restarted after the failure")
        assert _failcount(cluster) == "1"

        stop = cluster.run("node1", ["crm_resource", "-r", "vm1", "--meta", "-p", "target-role",
                                     "-v", "Stopped"], timeout=30)
        assert stop.returncode == 0, stop.stderr
        wait_until(lambda: _resource_state(cluster)[0] == "Stopped"
                   and domstate(SYSTEM_URI, name) is None, 60, 0.5, "vm1 stopped")
    except AssertionError:
        print(cluster.dump_logs(80))
        raise
    log = os.path.join(cluster.log_dir, "node1", "log", "pacemaker", "pacemaker.log")
    with open(log, errors="replace") as handle:
        text = handle.read()
    assert "vm1_monitor_2000" in text


MIGRATABLE = """\
<primitive id="vm2" class="ocf" provider="hasf" type="VirtualMachine">
  <instance_attributes id="vm2-ia">
    <nvpair id="vm2-config" name="config" value=%(config)s/>
    <nvpair id="vm2-force" name="force_stop" value="true"/>
  </instance_attributes>
  <instance_attributes id="vm2-on-node1" score="2">
    <rule id="vm2-on-node1-rule" score="0">
      <expression id="vm2-on-node1-expr" attribute="#uname" operation="eq" value="node1"/>
    </rule>
    <nvpair id="vm2-n1-hv" name="hypervisor" value=%(host_uri)s/>
    <nvpair id="vm2-n1-remote" name="remoteuri" value=%(private_uri)s/>
    <nvpair id="vm2-n1-data" name="migrateuri" value=%(to_private)s/>
  </instance_attributes>
  <instance_attributes id="vm2-on-node2" score="1">
    <rule id="vm2-on-node2-rule" score="0">
      <expression id="vm2-on-node2-expr" attribute="#uname" operation="eq" value="node2"/>
    </rule>
    <nvpair id="vm2-n2-hv" name="hypervisor" value=%(private_uri)s/>
    <nvpair id="vm2-n2-remote" name="remoteuri" value=%(host_uri)s/>
    <nvpair id="vm2-n2-data" name="migrateuri" value=%(to_host)s/>
  </instance_attributes>
  <meta_attributes id="vm2-meta">
    <nvpair id="vm2-allow-migrate" name="allow-migrate" value="true"/>
    <nvpair id="vm2-target-role" name="target-role" value="Stopped"/>
  </meta_attributes>
  <operations>
    <op id="vm2-start" name="start" interval="0s" timeout="90s"/>
    <op id="vm2-stop" name="stop" interval="0s" timeout="30s"/>
    <op id="vm2-monitor" name="monitor" interval="5s" timeout="30s"/>
    <op id="vm2-migrate-to" name="migrate_to" interval="0s" timeout="120s"/>
    <op id="vm2-migrate-from" name="migrate_from" interval="0s" timeout="60s"/>
  </operations>
</primitive>
"""


def test_pacemaker_live_migrates_between_two_nodes(agent_path, system_libvirtd,  # noqa: F811
                                                    domains, workdir):  # noqa: F811
    """Two nodes, each with its own libvirtd (node1: the host's, node2: a private one):
    a move of vm2 is done by Pacemaker as migrate_to + migrate_from, and back again."""
    from lab.libvirtd import PrivateLibvirtd
    from support.pacemaker import PacemakerCluster
    from lab.process import wait_until

    port = 49300 + os.getpid() % 100
    binds = [(os.path.dirname(agent_path), "/usr/lib/ocf/resource.d/hasf")]
    with PrivateLibvirtd() as node2_libvirtd, \
            PacemakerCluster(["node1", "node2"], extra_binds=binds) as cluster:
        domains.uris.append(node2_libvirtd.uri)
        name = domains.new("pcmk2")
        xml = MIGRATABLE % {
            "config": quoteattr(write_config(workdir, name)),
            "host_uri": quoteattr(HOST_URI), "private_uri": quoteattr(node2_libvirtd.uri),
            "to_private": quoteattr("tcp://%s:%d" % (node2_libvirtd.address, port)),
            "to_host": quoteattr("tcp://%s:%d" % (node2_libvirtd.network.host_address,
                                                   port + 1))}
        cluster.wait_online(60)

        def where():
            return (domstate(SYSTEM_URI, name), domstate(node2_libvirtd.uri, name))

        def on(node):
            root = cluster.status()
            for res in root.iter("resource"):
                if res.get("id") == "vm2" and res.get("role") == "Started":
                    return [n.get("name") for n in res.iter("node")] == [node]
            return False
        try:
            # created stopped, pinned to node1, then started
            created = cluster.run("node1", ["cibadmin", "-C", "-o", "resources", "-X", xml])
            assert created.returncode == 0, created.stderr
            prefer = cluster.run("node1", ["cibadmin", "-C", "-o", "constraints", "-X",
                                           '<rsc_location id="vm2-prefers-node1" rsc="vm2" '
                                           'node="node1" score="100"/>'])
            assert prefer.returncode == 0, prefer.stderr
            started = cluster.run("node1", ["crm_resource", "-r", "vm2", "--meta", "-p",
                                            "target-role", "-v", "Started"])
            assert started.returncode == 0, started.stderr
            wait_until(lambda: on("node1") and where() == ("running", None), 60, 0.5,
                       "vm2 running on node1 only")
            moved = cluster.run("node1", ["crm_resource", "-r", "vm2", "--move", "-N", "node2",
                                          "--force"])
            assert moved.returncode == 0, moved.stderr
            wait_until(lambda: on("node2") and where() == (None, "running"), 90, 0.5,
                       "vm2 live-migrated to node2")
            back = cluster.run("node1", ["crm_resource", "-r", "vm2", "--move", "-N", "node1",
                                         "--force"])
            assert back.returncode == 0, back.stderr
            wait_until(lambda: on("node1") and where() == ("running", None), 90, 0.5,
                       "vm2 live-migrated back to node1")
        except AssertionError:
            print(cluster.dump_logs(60))
            raise
        logs = cluster.dump_logs(100000)
        results = sorted(set(re.findall(r"Result of (\w+) operation for vm2 on (node\d): (\w+)",
                                        logs)))
        for op, node in (("migrate_to", "node1"), ("migrate_from", "node2"),
                         ("migrate_to", "node2"), ("migrate_from", "node1")):
            assert (op, node, "ok") in results, results
        assert all(outcome in ("ok", "not", "Cancelled") for _o, _n, outcome in results), results
        assert [r for r in results if r[0] == "start"] == [("start", "node1", "ok")]  # once
