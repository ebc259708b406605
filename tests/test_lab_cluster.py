"""The lab's crash test, once: the seed's Step Seven on a real two-node cluster.

Two Debian 12 node guests (qemu TCG) with corosync 3 + Pacemaker 2.1 and hasf
installed by `make install`, each powered by its own ipmi_sim BMC, configured
by `hasf-cib apply lab/hasf-lab.toml` (lab/cluster.py): fence_hasf_ipmi per
BMC, the SAN (tgt) on node2, the initiator and OCFS2Membership clones, the
imagestore and configstore OCFS2 clones, vm1 (a libvirt qemu domain, its image
on the imagestore) on node1.  One kill/fence/failover/rejoin/failback cycle
(lab/crashtest.py): kill -9 of node1's corosync and pacemakerd must end in
node2 fencing node1 through its BMC (its qemu really ends and a new one
starts), vm1 running on node2, node1 back with its initiator, o2cb and both
stores, and vm1 live-migrated back -- with the invariants sampled from both
nodes' own /proc throughout (never vm1 on both, no OCFS2 on a fenced node), a
marker written through vm1's image before the kill read back unchanged on
both nodes, and both volumes clean under fsck.ocfs2 -fn after a clean stop.
Measured here: ~3 min to vm1 running, ~2.5 min per cycle, ~6-7 min in all.
"""

import time

import pytest

from lab import crashtest

pytestmark = [pytest.mark.pacemaker, pytest.mark.slow]


def test_node1_crash_fails_vm1_over_and_back_without_violations(guest_image, tmp_path):
    started = time.monotonic()
    lines = []
    report = crashtest.run(cycles=1, say=lines.append)
    text = "%s\n%s" % (report.as_json(), "\n".join(lines)[-8000:])
    assert report.ok, text
    assert report.violations == [] and report.completed == 1, text
    assert report.fsck == {"imagestore": "clean", "configstore": "clean"}, text
    events = report.timelines[0]["events"]
    # the order Step Seven promises, each seen by its own witness
    assert events["node1 seen gone"] < events["node1 power off (qemu gone)"], text
    assert events["node1 power off (qemu gone)"] < events["vm1 running on node2"], text
    assert events["node1 power on"] < events["node1 Online again"], text
    assert events["node1 stores mounted"] < events["vm1 back on node1"], text
    assert report.failover_s and report.failback_s, text
    print("cycle with boot: %.1fs\n%s" % (time.monotonic() - started, text[-3000:]))
