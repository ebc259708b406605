"""The lab's crash test, once: the seed's Step Seven on a real two-node cluster.

Two Debian 12 node guests (qemu TCG) with corosync 3 + Pacemaker 2.1 and hasf
installed by `make install`, each powered by its own ipmi_sim BMC, fenced by
fence_hasf_ipmi, configured by `hasf-cib apply lab/hasf-lab.toml`
(lab/cluster.py).  kill -9 of node1's corosync and pacemakerd must end in
node2 fencing node1 -- its qemu really ends and a new one starts through the
BMC, a new boot id, a successful reboot in node2's fencing history -- and
node1 Online again (lab/crash.py).  Measured here: ~60 s to a configured
cluster, ~31-34 s from the kill to node1 Online again, 92-105 s in all
(three runs in a row before it joined the default `make test` run).
"""

import time

import pytest

from lab.cluster import Cluster
from lab.crash import crash

pytestmark = [pytest.mark.pacemaker, pytest.mark.slow]


def test_node1_killed_is_fenced_through_its_bmc_and_rejoins(guest_image):
    started = time.monotonic()
    with Cluster(lifetime=900) as cluster:
        assert cluster.timings["online_s"] < 240
        result = crash(cluster, timeout=300)
        bmcs = {name: bmc for name, bmc in cluster.bmcs.items()}
    report = "timeline:\n%s\nproblems: %s\nfacts: %s\n%s" % (
        result.timeline(), result.problems, result.facts, result.diagnostics[-6000:])
    assert result.ok, report
    events = result.events
    # the order Step Seven promises, each seen by its own witness
    assert events["node1 seen gone"] < events["node1 power off (qemu gone)"], report
    assert events["node1 power off (qemu gone)"] < events["node1 power on (BMC start script)"], report
    assert events["node1 power on (BMC start script)"] < events["node1 Online again"], report
    assert result.facts["boot_id_after"] != result.facts["boot_id_before"], report
    # nothing of the lab is left running
    assert all(bmc.qemu_pid() is None and bmc.proc is None for bmc in bmcs.values())
    print("cycle with boot: %.1fs\n%s" % (time.monotonic() - started, result.timeline()))
