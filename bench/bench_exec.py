"""Exec cost: what one hasf agent process costs over the bare interpreter.

Every monitor of every resource is a new process, so the floor is the
interpreter itself: `python3 -I -S -c pass`, measured in this same run.  Rows:
`meta-data` of every hasf executable (OCF agents and fence agents: the whole
parameter and action table is built and rendered) and a trivial monitor (the
framework's HasfTest agent, state in a file: imports, environment, parameter
checks, logging set-up and nothing else).  Target: <= 1.3x the floor.
"""

import os

from common import launcher, ocf_env, scratch_dir
from harness import Report, measure

FLOOR = ["/usr/bin/python3", "-I", "-S", "-c", "pass"]
TARGET = 1.3
EXECUTABLES = (("VirtualMachine", "hasf.agents.virtual_machine", "main"),
               ("Filesystem", "hasf.agents.filesystem", "main"),
               ("iSCSITarget", "hasf.agents.iscsi_target", "main"),
               ("iSCSILogicalUnit", "hasf.agents.iscsi_logical_unit", "main"),
               ("iscsi", "hasf.agents.iscsi_initiator", "main"),
               ("OCFS2Membership", "hasf.ocfs2_membership.agent", "main"),
               ("fence_hasf_ipmi", "hasf.stonith.ipmi", "fence_main"),
               ("fence_hasf_libvirt", "hasf.stonith.libvirt", "fence_main"),
               ("fence_hasf_demo", "hasf.stonith.demo", "fence_main"))


def _fence_metadata(path):
    return [path, "-o", "metadata"]


def run():
    report = Report("exec cost: hasf executables vs the interpreter's own floor "
                    "(python3 -I -S -c pass), same run")
    floor = measure("python3 -IS -c pass", FLOOR, runs=40)
    env = ocf_env()
    for name, module, function in EXECUTABLES:
        path = launcher(name, module, function)
        argv = _fence_metadata(path) if name.startswith("fence_") else [path, "meta-data"]
        ours = measure(name + " meta-data", argv, env, runs=40)
        report.compare(name + " meta-data", ours, floor, target=TARGET)
    state = os.path.join(scratch_dir("hasf-bench-exec-"), "state")
    agent = launcher("HasfTest", "testagents.hasf_test_agent")
    monitor_env = ocf_env(state=state)
    report.compare("HasfTest monitor (stopped)",
                   measure("HasfTest monitor", [agent, "monitor"], monitor_env, runs=40),
                   floor, target=TARGET)
    measure("start", [agent, "start"], monitor_env, runs=1, warmup=0)
    report.compare("HasfTest monitor (running)",
                   measure("HasfTest monitor", [agent, "monitor"], monitor_env, runs=40),
                   floor, target=TARGET)
    return report
