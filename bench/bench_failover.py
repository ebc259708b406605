"""Failover and failback of the lab cluster: hasf's agents versus ClusterLabs', same run.

The seed's crash test (lab/crashtest.py) on the two-node guest cluster, run
twice back to back: once with lab/hasf-lab.toml (hasf's agents and
fence_hasf_ipmi), once with lab/clusterlabs-lab.toml (the same scenario with
VirtualDomain, Filesystem, iSCSITarget/iSCSILogicalUnit, iscsi and
fence_ipmilan; OCFS2Membership stays hasf's, ClusterLabs has none).  Each
run: CYCLES kill/fence/failover/failback cycles.  Rows: the median failover
(kill -> vm1 running on node2, seen in node2's /proc) and failback (node1
Online again -> vm1 back on node1 by live migration), with the breakdown
(node1 seen gone, fence done) and the ratio hasf / ClusterLabs.  Absolute
times under TCG are not comparable to hardware; the ratios and breakdown are.
Takes ~15-25 minutes: it boots the cluster twice.
"""

import os
import statistics

from harness import Report

from lab import crashtest
from lab.cluster import REPO

CYCLES = int(os.environ.get("HASF_BENCH_FAILOVER_CYCLES", "3"))
SPECS = (("hasf", os.path.join(REPO, "lab", "hasf-lab.toml")),
         ("ClusterLabs", os.path.join(REPO, "lab", "clusterlabs-lab.toml")))


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _event(report, name):
    return _median([t["events"].get(name) for t in report.timelines])


def _row(what, hasf, anchor):
    if hasf is None or anchor is None:
        return "%-34s hasf %s | ClusterLabs %s" % (what, hasf, anchor)
    return "%-34s hasf %6.1f s | ClusterLabs %6.1f s | %.2fx" % (what, hasf, anchor,
                                                              hasf / anchor if anchor else 0)


def run():
    report = Report("Failover/failback on the lab cluster, %d cycles each (medians)" % CYCLES)
    results = {}
    for label, spec in SPECS:
        try:
            results[label] = crashtest.run(cycles=CYCLES, spec=spec)
        except Exception as exc:  # noqa: BLE001 -- the other half's figures still count
            report.note("%s could not run: %s" % (label, str(exc).splitlines()[0]))
    if len(results) < len(SPECS):
        for label, result in results.items():
            report.note("%s alone: %s" % (label, result.summary()))
        return report
    hasf, anchor = results["hasf"], results["ClusterLabs"]
    for what, name in (("node1 seen gone (detection)", "node1 seen gone"),
                       ("fence done", "fence done"),
                       ("node1 Online again", "node1 Online again"),
                       ("node1 stores mounted", "node1 stores mounted")):
        report.rows.append(_row(what, _event(hasf, name), _event(anchor, name)))
    report.rows.append(_row("failover: kill -> vm1 on node2", _median(hasf.failover_s),
                            _median(anchor.failover_s)))
    report.rows.append(_row("failback: node1 Online -> vm1 back", _median(hasf.failback_s),
                            _median(anchor.failback_s)))
    for label, result in results.items():
        report.note("%s: %s; violations %s; fsck %s" % (label, result.summary(),
                                                         result.violations, result.fsck))
        for problem in result.problems:
            report.note("%s problem: %s" % (label, problem))
    return report
