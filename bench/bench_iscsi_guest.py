"""The initiator's monitor, inside a guest kernel: hasf's `iscsi` versus heartbeat/iscsi.

This host has no iSCSI initiator kernel, so both agents run in a Debian guest
(lab/guest.py, qemu TCG: every figure is slower than on hardware,
the ratio is what counts), logged in to the same target on the host's tgtd.
The timing loop is bench/harness.py itself, copied into the guest.
"""

import json
import os

from common import REPO, launcher, ocf_env, scratch_dir
from harness import Report, Stats
from lab.tgtd import Tgtd
from lab.hasf_lib import hasf_lib

IQN = "iqn.2026-12.org.hasf.bench:guest-san"
DRIVER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from harness import measure
agent, portal, target = sys.argv[2:5]
env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf",
       "OCF_RESOURCE_INSTANCE": "initiator", "HA_RSCTMP": "/run/resource-agents",
       "OCF_RESKEY_CRM_meta_timeout": "30000", "OCF_RESKEY_CRM_meta_interval": "120000",
       "OCF_RESKEY_portal": portal, "OCF_RESKEY_target": target, "OCF_RESKEY_udev": "no"}
out = {}
for label, argv in (("hasf", [agent, "monitor"]),
                    ("iscsi monitor", ["/usr/lib/ocf/resource.d/heartbeat/iscsi", "monitor"])):
    s = measure(label, argv, env, runs=15)
    out[label] = {"wall": s.wall, "cpu": s.cpu, "rcs": s.rcs}
print(json.dumps(out))
"""
LAUNCHER = """#!/usr/bin/python3 -IS
import sys
sys.path[:0] = [%r]
from hasf.agents.iscsi_initiator import main
sys.exit(main())
"""


def _stats(label, data):
    return Stats(label, [data["wall"]], [data["cpu"]], data["rcs"])


def run():
    from lab.guest import Command, Guest
    from lab.image import guest_image

    report = Report("iscsi initiator (in a guest kernel): hasf vs heartbeat/iscsi")
    image = guest_image()
    work = scratch_dir("hasf-bench-guest-")
    disk = os.path.join(work, "lun1.img")
    with open(disk, "wb") as handle:
        handle.truncate(64 << 20)
    with Tgtd() as tgtd, Guest("bench", image=image) as guest:
        env = dict(ocf_env(iqn=IQN, target_iqn=IQN, lun=1, path=disk,
                           tgt_control_port=tgtd.control_port),
                   HA_RSCTMP=os.path.join(work, "rsc"), OCF_RESKEY_CRM_meta_interval="0")
        for name, module in (("iSCSITarget", "hasf.agents.iscsi_target"),
                             ("iSCSILogicalUnit", "hasf.agents.iscsi_logical_unit")):
            import subprocess

            done = subprocess.run([launcher(name, module), "start"], env=env,
                                  capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                raise RuntimeError("%s start: %s" % (name, done.stderr))
        # installed on the guest's own disk, as on a node (imports over 9p would be timed too)
        shared_lib, lib = guest.copy_in(hasf_lib(), "hasf-lib"), "/opt/hasf-lib"
        bench_dir = guest.copy_in(os.path.join(REPO, "bench"), "bench")
        with open(guest.host_path("iscsi"), "w") as handle:
            handle.write(LAUNCHER % lib)
        os.chmod(guest.host_path("iscsi"), 0o755)
        agent = "/usr/local/sbin/hasf-iscsi"
        portal = "10.0.2.2:%d" % tgtd.portal_port
        start = ["env", "OCF_ROOT=/usr/lib/ocf", "OCF_RESOURCE_INSTANCE=initiator",
                 "OCF_RESKEY_portal=" + portal, "OCF_RESKEY_target=" + IQN,
                 "OCF_RESKEY_discovery_type=static", "OCF_RESKEY_udev=false"]
        results = guest.run_batch(
            [["cp", "-a", shared_lib, lib], ["cp", guest.guest_path("iscsi"), agent],
             Command(("iscsid",), timeout=30), start + [agent, "start"],
             Command(("python3", "-c", DRIVER, bench_dir, agent, portal, IQN), timeout=300),
             start + [agent, "stop"]],
            modules=["iscsi_tcp", "sd_mod"], timeout=600)
        for result in results:
            result.check()
        figures = json.loads(results[4].stdout)
        ours, theirs = _stats("hasf", figures["hasf"]), _stats("iscsi monitor",
                                                               figures["iscsi monitor"])
        if ours.rcs != [0] or theirs.rcs != [0]:
            raise RuntimeError("monitor rc: hasf %s, heartbeat %s" % (ours.rcs, theirs.rcs))
        report.compare("monitor (logged in; guest, TCG)", ours, theirs)
        report.note("medians of 15 runs inside the guest; hasf reads sysfs, heartbeat/iscsi "
                    "runs iscsiadm -m session (and more)")
    return report
