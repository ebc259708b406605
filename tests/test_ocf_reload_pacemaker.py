"""OCF 1.1 reload under a real Pacemaker (support.pacemaker: corosync + pacemakerd, one node).

What is proven: a change of a parameter the meta-data marks reloadable makes
Pacemaker run reload-agent on the running resource -- not stop + start -- and
nothing ordered after it is restarted.  Two resources carry it:

- a clone of the framework's test agent (HasfTest, `fake` reloadable), with a
  resource ordered and colocated after the clone (the shape of
  OCFS2Membership -> OCFS2 stores -> VMs, whose o2cb needs kernel modules this
  host does not have; tests/test_ocfs2_membership.py runs its reload-agent
  against a guest kernel's configfs);
- hasf's Filesystem on a real ext4 loop device, with a resource ordered
  after it: its reload keeps the very mount (same mount id in the node).

The contrast, a change of a parameter that is not reloadable (HasfTest's
`count`), is watched the same way and does restart the clone and its
dependent: the observation can tell the two apart.

Evidence: the operations pacemaker-execd ran ("executing - rsc:R action:A
call_id:N" in the node's pacemaker.log: a reload is one reload-agent, a
restart a stop and a start); the CIB's operation history (the last
non-recurring operation of each resource and its call id -- Pacemaker records
a successful reload as that resource's start, with the reload's call id --
and `op-force-restart`, the parameters Pacemaker read from the meta-data as
forcing a restart); and the node's mount table.
"""

import os
import re
import shutil
import xml.etree.ElementTree as ET

import pytest

from test_filesystem import LoopDisk

pytestmark = [
    pytest.mark.pacemaker,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, loop devices)"),
    pytest.mark.skipif(not shutil.which("pacemakerd"), reason="pacemaker not installed"),
]

RESOURCES = """\
<resources>
  <clone id="base-clone">
    <primitive id="base" class="ocf" provider="hasf" type="HasfTest">
      <instance_attributes id="base-ia">
        <nvpair id="base-fake" name="fake" value="one"/>
      </instance_attributes>
      <operations><op id="base-mon" name="monitor" interval="5s" timeout="20s"/></operations>
    </primitive>
  </clone>
  <primitive id="dep" class="ocf" provider="hasf" type="HasfTest">
    <operations><op id="dep-mon" name="monitor" interval="5s" timeout="20s"/></operations>
  </primitive>
  <primitive id="store" class="ocf" provider="hasf" type="Filesystem">
    <instance_attributes id="store-ia">
      <nvpair id="store-device" name="device" value="%(device)s"/>
      <nvpair id="store-directory" name="directory" value="%(directory)s"/>
      <nvpair id="store-fstype" name="fstype" value="ext4"/>
    </instance_attributes>
    <operations><op id="store-mon" name="monitor" interval="10s" timeout="40s"/></operations>
  </primitive>
  <primitive id="user" class="ocf" provider="hasf" type="HasfTest">
    <operations><op id="user-mon" name="monitor" interval="5s" timeout="20s"/></operations>
  </primitive>
</resources>
"""

CONSTRAINTS = """\
<constraints>
  <rsc_order id="base-then-dep" first="base-clone" then="dep" kind="Mandatory"/>
  <rsc_colocation id="dep-with-base" rsc="dep" with-rsc="base-clone" score="INFINITY"/>
  <rsc_order id="store-then-user" first="store" then="user" kind="Mandatory"/>
  <rsc_colocation id="user-with-store" rsc="user" with-rsc="store" score="INFINITY"/>
</constraints>
"""


def _last_ops(cluster, attribute=None):
    """{resource id: (operation, call id)} of each resource's last non-recurring operation
    (or {resource id: that operation's `attribute`})."""
    status = ET.fromstring(cluster.cib_xml("node1", scope="status"))
    found = {}
    for rsc in status.iter("lrm_resource"):
        for op in rsc.iter("lrm_rsc_op"):
            if op.get("id", "").endswith("_last_0"):
                found[rsc.get("id")] = op.get(attribute) if attribute else \
                    (op.get("operation"), int(op.get("call-id")))
    return found


EXECUTING = re.compile(r"executing - rsc:(\S+) action:(\S+) call_id:(\d+)")


class ExecdLog:
    """The operations pacemaker-execd ran since the last look ([(resource, action, call id)])."""

    def __init__(self, cluster):
        self.path = os.path.join(cluster.log_dir, "node1", "log", "pacemaker", "pacemaker.log")
        self.offset = 0
        self.new()

    def new(self):
        with open(self.path, errors="replace") as handle:
            handle.seek(self.offset)
            text = handle.read()
            self.offset = handle.tell()
        return [(r, a, int(c)) for r, a, c in EXECUTING.findall(text)]


def _settle(cluster):
    done = cluster.run("node1", ["crm_resource", "--wait", "--timeout", "90s"], timeout=100)
    assert done.returncode == 0, done.stdout + done.stderr


def _set(cluster, resource, name, value):
    changed = cluster.run("node1", ["crm_resource", "-r", resource, "--set-parameter", name,
                                    "--parameter-value", value])
    assert changed.returncode == 0, changed.stderr
    _settle(cluster)


def _mount_id(cluster, directory):
    table = cluster.run("node1", ["cat", "/proc/self/mountinfo"], check=True).stdout
    ids = [line.split()[0] for line in table.splitlines() if line.split()[4] == directory]
    assert len(ids) == 1, table
    return ids[0]


def _failures(cluster):
    return [op.attrib for op in cluster.status().iter("failure")]


def test_reloadable_change_reloads_and_restarts_nothing_downstream(hasf_agent, workdir):
    """Mutation: emit no reloadable attribute (metadata._parameter) -> Pacemaker restarts
    `base` and `dep` on the first change (stop and start run, dep's call id moves)."""
    from support.pacemaker import PacemakerCluster

    agents = os.path.dirname(hasf_agent("HasfTest", "testagents.hasf_test_agent"))
    hasf_agent("Filesystem", "hasf.agents.filesystem")
    disk = LoopDisk(workdir)
    mnt = os.path.join(workdir, "store")
    try:
        with PacemakerCluster(["node1"],
                              extra_binds=[(agents, "/usr/lib/ocf/resource.d/hasf")]) as cluster:
            cluster.wait_online(60)
            try:
                _run_scenario(cluster, disk, mnt)
            except AssertionError:
                print(cluster.dump_logs(120))
                raise
    finally:
        disk.cleanup(mnt)


def _run_scenario(cluster, disk, mnt):
    for scope, xml in (("resources", RESOURCES % {"device": disk.device, "directory": mnt}),
                       ("constraints", CONSTRAINTS)):
        replaced = cluster.run("node1", ["cibadmin", "--replace", "-o", scope, "-X", xml])
        assert replaced.returncode == 0, replaced.stderr
    _settle(cluster)
    started = _last_ops(cluster)
    assert {r: op for r, (op, _) in started.items()} == {
        "base": "start", "dep": "start", "store": "start", "user": "start"}, started
    mount = _mount_id(cluster, mnt)
    ran = ExecdLog(cluster)
    # what Pacemaker recorded from the meta-data at start: the parameters that force a restart
    restart = {r: set((v or "").split()) for r, v in _last_ops(cluster, "op-force-restart").items()}
    assert "count" in restart["base"] and "fake" not in restart["base"], restart
    assert "device" in restart["store"] and "fast_stop" not in restart["store"], restart

    # a reloadable parameter of the running clone: reload-agent, dependents untouched
    _set(cluster, "base", "fake", "two")
    ops = [op for op in ran.new() if op[1] != "monitor"]
    assert [op[:2] for op in ops] == [("base", "reload-agent")], ops
    after = _last_ops(cluster)
    assert after["base"] == ("start", ops[0][2]), after  # the reload, recorded as the start
    assert after["dep"] == started["dep"] and after["user"] == started["user"], after
    [state] = cluster.run("node1", ["find", "/run/resource-agents", "-name", "HasfTest-base*"],
                          check=True).stdout.split()
    assert cluster.run("node1", ["cat", state], check=True).stdout == "two"

    # Filesystem's check/stop parameters: reload-agent, the same mount, `user` untouched
    _set(cluster, "store", "statusfile_prefix", ".hasf-check/")
    _set(cluster, "store", "fast_stop", "false")
    ops = [op for op in ran.new() if op[1] != "monitor"]
    assert [op[:2] for op in ops] == [("store", "reload-agent")] * 2, ops
    after = _last_ops(cluster)
    assert after["store"] == ("start", ops[-1][2]), after
    assert after["user"] == started["user"] and after["dep"] == started["dep"], after
    assert _mount_id(cluster, mnt) == mount
    assert _failures(cluster) == []

    # the contrast: `count` is not reloadable -> stop + start of the clone and of dep
    _set(cluster, "base", "count", "2")
    ops = [op[:2] for op in ran.new() if op[1] != "monitor"]
    assert ops == [("dep", "stop"), ("base", "stop"), ("base", "start"), ("dep", "start")], ops
    restarted = _last_ops(cluster)
    assert restarted["base"][0] == "start", restarted
    assert restarted["dep"][0] == "start" and restarted["dep"][1] > started["dep"][1], restarted
    assert restarted["user"] == started["user"], restarted
    assert _failures(cluster) == []
