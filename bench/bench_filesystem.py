"""Filesystem monitor: hasf versus heartbeat/Filesystem on the same mounted ext4 (loop device).

Both watch one mount: ClusterLabs' agent was mounted by hasf's start (the same
device and directory), so the two monitors answer the same question.
"""

import os
import subprocess

from common import launcher, ocf_env, scratch_dir
from harness import Report, measure

HEARTBEAT = "/usr/lib/ocf/resource.d/heartbeat/Filesystem"


def run():
    report = Report("Filesystem: hasf vs heartbeat/Filesystem (ext4 on a loop device)")
    work = scratch_dir("hasf-bench-fs-")
    image, mnt = os.path.join(work, "fs.img"), os.path.join(work, "mnt")
    with open(image, "wb") as handle:
        handle.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True, timeout=60, capture_output=True)
    device = subprocess.run(["losetup", "-f", "--show", image], check=True, timeout=30,
                            capture_output=True, text=True).stdout.strip()
    agent = launcher("Filesystem", "hasf.agents.filesystem")
    env = dict(ocf_env(device=device, directory=mnt, fstype="ext4"),
               HA_RSCTMP=os.path.join(work, "rsc"))
    try:
        if measure("start", [agent, "start"], env, runs=1, warmup=0).rcs != [0]:
            raise RuntimeError("Filesystem start failed")
        for level, interval in (("0", "20000"), ("10", "60000"), ("20", "120000")):
            level_env = dict(env, OCF_CHECK_LEVEL=level, OCF_RESKEY_CRM_meta_interval=interval)
            mine = measure("hasf monitor", [agent, "monitor"], level_env, runs=30)
            theirs = measure("Filesystem monitor", [HEARTBEAT, "monitor"], level_env, runs=30)
            if mine.rcs != [0] or theirs.rcs != [0]:
                raise RuntimeError("monitor depth %s: hasf rc %s, heartbeat rc %s"
                                   % (level, mine.rcs, theirs.rcs))
            report.compare("monitor depth %s (mounted)" % level, mine, theirs)
        env_stop = dict(env, OCF_RESKEY_CRM_meta_interval="0")
        for argv in ([agent, "stop"],):
            if measure("stop", argv, env_stop, runs=1, warmup=0).rcs != [0]:
                raise RuntimeError("Filesystem stop failed")
        mine = measure("hasf probe", [agent, "monitor"], env_stop, runs=30)
        theirs = measure("Filesystem probe", [HEARTBEAT, "monitor"], env_stop, runs=30)
        report.compare("probe (not mounted)", mine, theirs)
        report.note("depth 0 reads /proc/self/mountinfo in-process; depth 10 runs one dd, depth"
                    " 20 one forked child as well; the probe checks every mount namespace and"
                    " an exclusive open (ClusterLabs: several processes at every depth)")
    finally:
        subprocess.run(["umount", mnt], timeout=30, capture_output=True)
        subprocess.run(["losetup", "-d", device], timeout=30, capture_output=True)
    return report
