"""`make crash-test`: the seed's Step Seven, N times over, with the invariants checked throughout.

Why: one crash proves the path exists; many prove it holds.  ``run()``
brings the lab cluster up (lab/cluster.py: SAN, initiators, o2cb, both
stores, vm1 on node1), starts the witnesses (lab/invariants.py), and runs
``cycles`` kill/fence/failover/rejoin/failback cycles (lab/crash.py), each
writing a marker through vm1 before its kill and checking every marker
written so far after failover and after failback.  Then it stops every
resource through Pacemaker (the stores unmount cleanly), powers the nodes
off and checks both OCFS2 volumes on the host with ``fsck.ocfs2 -fn``.

The report (``--report FILE.json``)::

    {"cycles": N, "completed": K, "violations": [...], "failover_s": [...],
     "failback_s": [...], "fence": "ipmi", ...}

failover_s: from the kill to vm1 running on the survivor (its own /proc);
failback_s: from the victim Online again to vm1 running on it after the
live migration back.  Violations: the invariants (vm1 on two nodes, OCFS2
mounted on a fenced node), markers that changed, volumes fsck calls
unclean.  Problems: incomplete cycles, and stretches in which a powered
node went unsampled too long for the invariants to have been checked.  The command exits non-zero on any violation or incomplete cycle.

    python -m lab.crashtest --cycles 3 --report crash.json [--fence ipmi]
"""

import argparse
import dataclasses
import json
import os
import signal
import statistics
import sys
import time

from lab.cluster import REPO, SPEC, Cluster
from lab.crash import CrashTestError, crash
from lab.invariants import Invariants

FENCES = {"ipmi": SPEC, "demo": os.path.join(REPO, "lab", "hasf-lab-demo.toml"),
          "libvirt": os.path.join(REPO, "lab", "hasf-lab-libvirt.toml")}


@dataclasses.dataclass
class Report:
    cycles: int
    fence: str
    completed: int = 0
    violations: list = dataclasses.field(default_factory=list)
    failover_s: list = dataclasses.field(default_factory=list)
    failback_s: list = dataclasses.field(default_factory=list)
    timelines: list = dataclasses.field(default_factory=list)
    problems: list = dataclasses.field(default_factory=list)
    cluster: dict = dataclasses.field(default_factory=dict)
    fsck: dict = dataclasses.field(default_factory=dict)

    @property
    def ok(self):
        return not self.violations and self.completed == self.cycles and not self.problems

    def summary(self):
        def median(values):
            return "%.1fs" % statistics.median(values) if values else "-"
        return ("%d of %d cycles completed, %d violations; failover median %s, failback "
                "median %s (fence: %s)" % (self.completed, self.cycles, len(self.violations),
                                           median(self.failover_s), median(self.failback_s),
                                           self.fence))

    def as_json(self):
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)


def _record(report, index, result):
    victim, survivor = result.victim, result.survivor
    events = result.events
    report.timelines.append({"cycle": index + 1, "events": events,
                             "problems": result.problems})
    failover = events.get("vm1 running on %s" % survivor)
    online, back = events.get("%s Online again" % victim), events.get("vm1 back on %s" % victim)
    if failover is not None:
        report.failover_s.append(failover)
    if online is not None and back is not None:
        report.failback_s.append(round(back - online, 1))
    for problem in result.problems:
        if problem.startswith("markers changed"):
            report.violations.append("cycle %d: %s" % (index + 1, problem))
    if result.ok:
        report.completed += 1
    else:
        report.problems.extend("cycle %d: %s" % (index + 1, p) for p in result.problems)


def run(cycles=1, fence="ipmi", say=None, directory=None, keep=False, timeout=480, spec=None):
    """Bring the lab up, run the cycles, shut down cleanly, check the volumes; a Report.
    spec: another lab spec (bench_failover runs lab/clusterlabs-lab.toml)."""
    say = say or (lambda message: None)
    if fence not in FENCES:
        raise CrashTestError("fence %r: the lab runs %s" % (fence, ", ".join(FENCES)))
    report = Report(cycles, fence)
    markers = {}
    with Cluster(spec or FENCES[fence], directory=directory, keep=keep,
                 lifetime=900 + cycles * 600, say=say) as cluster:
        report.cluster = dict(cluster.timings)
        report.fence = ",".join(cluster.lab.fence_agents)
        invariants = Invariants(cluster, say=say).start()
        try:
            for index in range(cycles):
                try:
                    result = crash(cluster, timeout=timeout, say=say, invariants=invariants,
                                   markers=markers, index=index)
                except CrashTestError as exc:
                    report.problems.append("cycle %d could not run: %s" % (index + 1, exc))
                    break
                _record(report, index, result)
                say("cycle %d:\n%s" % (index + 1, result.timeline()))
                for problem in result.problems:
                    say("PROBLEM: " + problem)
                if result.diagnostics:
                    say(result.diagnostics)
        finally:
            invariants.stop()
            report.violations[:0] = invariants.violations
            report.problems.extend(invariants.blind)
        try:
            cluster.clean_stop()
        except Exception as exc:  # noqa: BLE001 -- reported; the volumes are checked anyway
            report.problems.append("clean stop: %s" % exc)
        for bmc in cluster.bmcs.values():
            bmc.stop()
        for label, (clean, output) in cluster.san_disk.check().items():
            report.fsck[label] = "clean" if clean else output[-1500:]
            if not clean:
                report.violations.append("fsck.ocfs2 -fn %s: not clean" % label)
    say(report.summary())
    return report


def interruptible():
    """SIGINT and SIGTERM end the run through KeyboardInterrupt, so the cluster's context
    manager stops the nodes and their BMCs.  Why: make started in the background by a
    non-interactive shell hands Python SIGINT ignored, and SIGTERM's default ends the
    process with the qemus and ipmi_sims left running."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupt)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1)
    parser.add_argument("--report", help="write the JSON report here")
    parser.add_argument("--fence", default="ipmi", choices=sorted(FENCES))
    parser.add_argument("--keep", metavar="DIR", help="build the lab in DIR and keep it")
    args = parser.parse_args(argv)

    def say(message):
        print("%s %s" % (time.strftime("%H:%M:%S"), message), flush=True)
    interruptible()
    try:
        report = run(args.cycles, args.fence, say, directory=args.keep, keep=bool(args.keep))
    except CrashTestError as exc:
        print("crash test: %s" % exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print("crash test interrupted (%s); the lab was stopped" % (exc or "SIGINT"),
              file=sys.stderr)
        return 130
    if args.report:
        with open(args.report, "w") as handle:
            handle.write(report.as_json() + "\n")
    print("%d passed, %d failed" % (report.completed, report.cycles - report.completed))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
