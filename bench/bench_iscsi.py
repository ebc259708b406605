"""iSCSI target and LU monitors: hasf versus heartbeat/iSCSITarget and iSCSILogicalUnit.

Both pairs watch the same running target and LU in one tgtd.  ClusterLabs'
agents have no control-port option, so this tgtd uses the default port 0;
the bench says so and does not run if another tgtd already has it.
"""

import os

from common import launcher, ocf_env, scratch_dir
from harness import Report, measure
from lab.tgtd import Tgtd

HEARTBEAT = "/usr/lib/ocf/resource.d/heartbeat/"
IQN = "iqn.2026-12.org.hasf.bench:san"


def run():
    report = Report("iSCSI (tgt): hasf vs heartbeat/iSCSITarget, iSCSILogicalUnit")
    work = scratch_dir("hasf-bench-iscsi-")
    disk = os.path.join(work, "lu1.img")
    with open(disk, "wb") as handle:
        handle.truncate(16 << 20)
    with Tgtd(control_port=0) as tgtd:
        target = launcher("iSCSITarget", "hasf.agents.iscsi_target")
        lun = launcher("iSCSILogicalUnit", "hasf.agents.iscsi_logical_unit")
        rsc = {"HA_RSCTMP": os.path.join(work, "rsc")}
        t_env = dict(ocf_env(iqn=IQN, implementation="tgt", tid=1), **rsc)
        l_env = dict(ocf_env(target_iqn=IQN, lun=1, path=disk, implementation="tgt"), **rsc)
        for argv, env in (([target, "start"], t_env), ([lun, "start"], l_env)):
            if measure("start", argv, env, runs=1, warmup=0).rcs != [0]:
                raise RuntimeError("%s start failed" % os.path.basename(argv[0]))
        for name, ours, env in (("iSCSITarget", target, t_env),
                                ("iSCSILogicalUnit", lun, l_env)):
            mine = measure("hasf " + name + " monitor", [ours, "monitor"], env, runs=30)
            theirs = measure(name + " monitor", [HEARTBEAT + name, "monitor"], env, runs=30)
            if mine.rcs != [0] or theirs.rcs != [0]:
                raise RuntimeError("%s monitor: hasf rc %s, heartbeat rc %s"
                                   % (name, mine.rcs, theirs.rcs))
            report.compare("%s monitor (running)" % name, mine, theirs, target=0.5)
        tgtadm = measure("tgtadm show", ["tgtadm", "--lld", "iscsi", "--op", "show", "--mode",
                                         "target"], runs=30)
        report.note("one tgtadm --op show alone: %.1f ms (each heartbeat monitor runs one, "
                    "its LU monitor two; hasf's monitors run none: they read tgtd's "
                    "management socket, issue 12)" % (tgtadm.wall * 1000))
        report.note("tgtd on control port %d, portal %s" % (tgtd.control_port, tgtd.portal))
    return report
