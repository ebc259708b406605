"""Framework start-up: the HasfTest agent versus heartbeat/Dummy (issue: foundation).

Both keep their state in a file, so this measures nothing but what an agent
costs to exec: interpreter or shell start-up, imports, parameter handling.
"""

import os

from common import launcher, ocf_env, scratch_dir
from harness import Report, measure

DUMMY = "/usr/lib/ocf/resource.d/heartbeat/Dummy"


def run():
    report = Report("framework: HasfTest (hasf.ocf) vs heartbeat/Dummy")
    agent = launcher("HasfTest", "testagents.hasf_test_agent")
    state_dir = scratch_dir("hasf-bench-state-")
    env_h = ocf_env(state=os.path.join(state_dir, "h"))
    env_d = ocf_env(state=os.path.join(state_dir, "d"))
    for action in ("meta-data", "monitor"):
        ours = measure("HasfTest " + action, [agent, action], env_h, runs=40)
        theirs = measure("Dummy " + action, [DUMMY, action], env_d, runs=40)
        report.compare(action + " (stopped)", ours, theirs, target=1.0)
    measure("start", [agent, "start"], env_h, runs=1, warmup=0)
    measure("start", [DUMMY, "start"], env_d, runs=1, warmup=0)
    ours = measure("HasfTest monitor", [agent, "monitor"], env_h, runs=40)
    theirs = measure("Dummy monitor", [DUMMY, "monitor"], env_d, runs=40)
    report.compare("monitor (running)", ours, theirs, target=1.0)
    report.note("python3 -I -S -c pass alone: %.1f ms" % (
        measure("python", ["/usr/bin/python3", "-IS", "-c", "pass"], runs=40).wall * 1000))
    return report
