"""Exec cost: what one hasf agent process costs over the bare interpreter.

Every monitor of every resource is a new process, so the floor is the
interpreter itself: `python3 -I -S -c pass`, measured in this same run.  Rows:
`meta-data` of every hasf executable (OCF agents and fence agents: the whole
parameter and action table is built and rendered; fence agents are asked the
way pacemaker-fenced asks, `action=metadata` on stdin) and trivial monitors:
OCFS2Membership's probe on a node without o2cb (one configfs lookup) and the
framework's HasfTest agent (state in a file: imports, environment, parameter
checks, logging set-up and nothing else).  Target: <= 1.3x the floor.

`fence_hasf_* -o metadata` (the command line, as `pcs stonith describe` runs
it) is a note, not a row: the standard library's getopt imports gettext and
with it re and enum (~8 ms); fenced's stdin path never imports getopt.
"""

import os

from common import launcher, ocf_env, scratch_dir
from harness import Report, interleaved, measure

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


def _row(report, what, argv, env, stdin=None):
    """One row: the command and the floor, measured in alternation."""
    ours, floor = interleaved((what, argv, env, stdin), ("python3 -IS -c pass", FLOOR, None, None))
    report.compare(what, ours, floor, target=TARGET)
    return floor


def run():
    report = Report("exec cost: hasf executables vs the interpreter's own floor "
                    "(python3 -I -S -c pass), measured in alternation")
    env = ocf_env()
    for name, module, function in EXECUTABLES:
        path = launcher(name, module, function)
        if name.startswith("fence_"):
            floor = _row(report, name + " metadata", [path], env, "action=metadata\n")
            if name == "fence_hasf_ipmi":
                cli = measure(name + " -o metadata", [path, "-o", "metadata"], env, runs=20)
                report.note("%s -o metadata (command line, getopt): %.1f ms, %.2fx the floor"
                            % (name, cli.wall * 1000, cli.wall / floor.wall))
        else:
            _row(report, name + " meta-data", [path, "meta-data"], env)
    probe_env = dict(env, OCF_RESKEY_CRM_meta_interval="0", OCF_RESKEY_nodes="node1:10.0.0.1")
    membership = launcher("OCFS2Membership", "hasf.ocfs2_membership.agent")
    _row(report, "OCFS2Membership probe (no o2cb)", [membership, "monitor"], probe_env)
    agent = launcher("HasfTest", "testagents.hasf_test_agent")
    monitor_env = ocf_env(state=os.path.join(scratch_dir("hasf-bench-exec-"), "state"))
    _row(report, "HasfTest monitor (stopped)", [agent, "monitor"], monitor_env)
    measure("start", [agent, "start"], monitor_env, runs=1, warmup=0)
    _row(report, "HasfTest monitor (running)", [agent, "monitor"], monitor_env)
    return report
