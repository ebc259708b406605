"""ocf:hasf:OCFS2Membership: the o2cb cluster registered from the CIB's node list.

Host: no o2nm (no kernel modules), so only what a node without it sees.
Guests (Debian kernels, lab.guest): two nodes share one raw disk with an
OCFS2 volume (the o2cb stack, not local mode) and a private link for o2net;
on each, hasf's OCFS2Membership registers the cluster, hasf's Filesystem
mounts the volume as a clone instance would, each node reads the file the
other wrote while both have it mounted, and everything stops in order.
"""

import os

import pytest

from lab import ocfs2_cluster
from lab.hasf_lib import hasf_lib
from lab.ocfrun import AgentRun
from lab.ocfs2_cluster import NODES
from lab.storage_path import GUEST_LAUNCHER, ocf


@pytest.fixture(scope="module")
def agent(hasf_agent):
    return hasf_agent("OCFS2Membership", "hasf.ocfs2_membership.agent")


def test_node_without_o2cb(agent, tmp_path):
    """This host has no o2nm: probe 7, stop 0, start ERR_INSTALLED; bad lists and a
    keepalive not below the idle timeout refused (mutation: drop the check in validate)."""
    run = AgentRun(agent, str(tmp_path / "rsc"), "o2", "OCFS2Membership", nodes=NODES,
                   cluster_name="hasf")
    node1 = {"OCF_RESKEY_CRM_meta_on_node": "node1"}
    assert run.probe(extra=node1).rc == 7
    assert run("stop", extra=node1).rc == 0
    if not os.path.isdir("/sys/kernel/config/cluster"):
        started = run("start", extra=node1)
        assert started.rc == 5 and "ocfs2_nodemanager" in started.reason, started
    bad = run("start", extra=node1, nodes="node1:10.0.0.1 node1:10.0.0.2 x:not-an-ip")
    assert bad.rc == 6 and "nodes=" in bad.reason
    # o2net keeps its keepalive below its idle timeout: refused before anything is touched
    slow = run("validate-all", extra=node1, idle_timeout_ms="2000", keepalive_delay_ms="2000")
    assert slow.rc == 6 and "keepalive_delay_ms" in slow.reason, slow
    assert run("validate-all", extra=node1, idle_timeout_ms="3000").rc == 0
    stranger = run("start", extra={"OCF_RESKEY_CRM_meta_on_node": "node9"})
    assert stranger.rc == 2 and "node9" in stranger.reason  # not in nodes: not here


def test_two_nodes_mount_one_ocfs2_volume(guest_image, tmp_path):
    outcome = ocfs2_cluster.run(guest_image, str(tmp_path), hasf_lib())
    assert outcome.problems() == [], outcome.table()


def test_nodes_join_by_reload_and_notify(guest_image, tmp_path):
    """A node appended to `nodes` is added online by reload-agent (o2cb can add, not remove);
    a post-start notification for a node missing from o2nm adds it, one missing from
    `nodes` is reported; a conflicting change is refused; a node dropped from `nodes` stays
    registered with a warning; stop unregisters.  Mutation: no warning for a dropped node in
    OCFS2Membership.reload_agent -> fails."""
    from lab.guest import Guest

    one = "node1:10.0.2.15"   # the guest's user-mode network address: o2net listens on it
    two = one + " node2:10.0.2.99"
    with Guest("node1", image=guest_image) as guest:
        lib = guest.copy_in(hasf_lib(), "hasf-lib")
        with open(guest.host_path("OCFS2Membership"), "w") as handle:
            handle.write(GUEST_LAUNCHER % (lib, "hasf.ocfs2_membership.agent"))
        os.chmod(guest.host_path("OCFS2Membership"), 0o755)
        agent = guest.guest_path("OCFS2Membership")
        base = {"CRM_meta_on_node": "node1", "cluster_name": "hasf"}
        post_start = dict(base, CRM_meta_notify_type="post", CRM_meta_notify_operation="start",
                          CRM_meta_notify_start_uname="node2")
        listing = ["ls", "/sys/kernel/config/cluster/hasf/node"]
        steps = [
            ("start", ocf(agent, "start", nodes=one, **base)), ("ls1", listing),
            ("notify-unknown", ocf(agent, "notify", nodes=one, **post_start)), ("ls2", listing),
            ("reload", ocf(agent, "reload-agent", nodes=two, **base)), ("ls3", listing),
            ("notify-known", ocf(agent, "notify", nodes=two, **post_start)),
            ("conflict", ocf(agent, "reload-agent", nodes=one + " node2:10.0.2.98", **base)),
            ("num2", ["cat", "/sys/kernel/config/cluster/hasf/node/node2/num"]),
            ("shrink", ocf(agent, "reload-agent", nodes=one, **base)), ("ls4", listing),
            ("stop", ocf(agent, "stop", nodes=two, **base)),
            ("gone", ["ls", "/sys/kernel/config/cluster"]),
        ]
        results = guest.run_batch([argv for _, argv in steps], modules=["ocfs2"], timeout=300)
    got = {name: r for (name, _), r in zip(steps, results)}
    codes = {n: r.returncode for n, r in got.items()}
    assert codes == {"start": 0, "ls1": 0, "notify-unknown": 0, "ls2": 0, "reload": 0,
                     "ls3": 0, "notify-known": 0, "conflict": 1, "num2": 0, "shrink": 0,
                     "ls4": 0, "stop": 0, "gone": 0}, {n: r.stderr[-500:] for n, r in got.items()}
    assert got["ls1"].stdout.split() == got["ls2"].stdout.split() == ["node1"]
    assert "node2 started but is not in nodes" in got["notify-unknown"].stderr
    assert got["ls3"].stdout.split() == ["node1", "node2"]
    assert "registered as" in got["conflict"].stderr
    assert got["num2"].stdout.strip() == "1"
    # dropped from nodes: o2cb cannot remove it online; kept, and the log says so
    assert "node2 no longer in nodes but still registered" in got["shrink"].stderr
    assert got["ls4"].stdout.split() == ["node1", "node2"]
    assert got["gone"].stdout.split() == []
