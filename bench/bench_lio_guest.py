"""The SAN agents' monitor on LIO, inside a guest kernel: hasf's lio-t versus ClusterLabs' lio-t.

The host has no target_core_mod, so one Debian guest (lab/guest.py, qemu
TCG: every figure is slower than on hardware, the ratio is what counts)
runs both.  hasf's agents make one target and one LU (a virtio disk); then
hasf's monitor and heartbeat/iSCSITarget's (and iSCSILogicalUnit's) monitor
of that same target and LU are timed in alternation (harness.interleaved,
copied into the guest), hasf installed on the guest's own disk as on a node.
"""

import json
import os

from common import REPO, scratch_dir
from harness import Report, Stats
from lab.hasf_lib import hasf_lib

IQN = "iqn.2026-12.org.hasf.bench:lio"
TARGET = 0.2
DRIVER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from harness import interleaved, measure
iqn, disk = sys.argv[2:4]
env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf",
       "HA_RSCTMP": "/run/resource-agents", "OCF_RESKEY_CRM_meta_timeout": "20000",
       "OCF_RESKEY_CRM_meta_interval": "10000", "OCF_RESKEY_implementation": "lio-t",
       "OCF_RESKEY_iqn": iqn, "OCF_RESKEY_target_iqn": iqn, "OCF_RESKEY_lun": "0",
       "OCF_RESKEY_path": disk}
out = {}
for kind in ("iSCSITarget", "iSCSILogicalUnit"):
    env_k = dict(env, OCF_RESOURCE_INSTANCE="bench-" + kind)
    ours, theirs = interleaved(
        ("hasf", ["/usr/local/sbin/hasf-" + kind, "monitor"], env_k, None),
        ("heartbeat/" + kind, ["/usr/lib/ocf/resource.d/heartbeat/" + kind, "monitor"],
         env_k, None), runs=25)
    out[kind] = {s.label: {"wall": s.wall, "cpu": s.cpu, "rcs": s.rcs} for s in (ours, theirs)}
floor = measure("python3 -I -S -c pass", ["python3", "-I", "-S", "-c", "pass"], env, runs=25)
out["floor"] = {"wall": floor.wall, "cpu": floor.cpu, "rcs": floor.rcs}
print(json.dumps(out))
"""
LAUNCHER = """#!/usr/bin/python3 -IS
import sys
sys.path[:0] = ["/opt/hasf-lib"]
from %s import main
sys.exit(main())
"""
MODULES = ["target_core_mod", "target_core_iblock", "iscsi_target_mod"]


def _ocf(kind, action):
    return ["env", "OCF_ROOT=/usr/lib/ocf", "HA_RSCTMP=/run/resource-agents",
            "OCF_RESOURCE_INSTANCE=bench-" + kind, "OCF_RESKEY_implementation=lio-t",
            "OCF_RESKEY_iqn=" + IQN, "OCF_RESKEY_target_iqn=" + IQN, "OCF_RESKEY_lun=0",
            "OCF_RESKEY_path=/dev/vdb", "/usr/local/sbin/hasf-" + kind, action]


def run():
    from lab.guest import Command, Disk, Guest
    from lab.image import guest_image

    report = Report("SAN agents on LIO (in a guest kernel): hasf lio-t vs ClusterLabs lio-t")
    work = scratch_dir("hasf-bench-lio-")
    disk = os.path.join(work, "lun.img")
    with open(disk, "wb") as handle:
        handle.truncate(64 << 20)
    with Guest("bench", image=guest_image(), disks=[Disk(disk)]) as guest:
        shared_lib = guest.copy_in(hasf_lib(), "hasf-lib")
        bench_dir = guest.copy_in(os.path.join(REPO, "bench"), "bench")
        commands = [["cp", "-a", shared_lib, "/opt/hasf-lib"]]
        for kind, module in (("iSCSITarget", "hasf.agents.iscsi_target"),
                             ("iSCSILogicalUnit", "hasf.agents.iscsi_logical_unit")):
            with open(guest.host_path(kind), "w") as handle:
                handle.write(LAUNCHER % module)
            os.chmod(guest.host_path(kind), 0o755)
            commands.append(["cp", guest.guest_path(kind), "/usr/local/sbin/hasf-" + kind])
        commands += [_ocf("iSCSITarget", "start"), _ocf("iSCSILogicalUnit", "start"),
                     Command(("python3", "-c", DRIVER, bench_dir, IQN, "/dev/vdb"),
                             timeout=600),
                     _ocf("iSCSILogicalUnit", "stop"), _ocf("iSCSITarget", "stop")]
        results = guest.run_batch(commands, modules=MODULES, timeout=900)
    for result in results:
        result.check()
    figures = json.loads(results[-3].stdout)
    floor = figures.pop("floor")
    for kind, pair in figures.items():
        ours, theirs = (Stats(label, [d["wall"]], [d["cpu"]], d["rcs"])
                        for label, d in pair.items())
        if ours.rcs != [0] or theirs.rcs != [0]:
            raise RuntimeError("%s monitor rc: hasf %s, heartbeat %s"
                               % (kind, ours.rcs, theirs.rcs))
        report.compare("%s monitor (running; guest, TCG)" % kind, ours, theirs, TARGET)
    report.note("the floor, python3 -I -S -c pass in the same guest: %.1f ms (%.2fx of "
                "heartbeat/iSCSITarget's monitor)" % (floor["wall"] * 1000, floor["wall"] /
                                                       figures["iSCSITarget"][
                                                           "heartbeat/iSCSITarget"]["wall"]))
    report.note("medians of 25 alternating runs in one guest; hasf reads a few configfs "
                "attributes in a forked child, heartbeat's lio-t runs bash, ocf-shellfuncs, "
                "and its helpers")
    return report
