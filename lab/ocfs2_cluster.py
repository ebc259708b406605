"""Two guest nodes, one OCFS2 volume, o2cb registered by hasf's OCFS2Membership.

Two Debian guests (guest.py) share one raw disk holding an OCFS2 volume
made with the o2cb stack (not local mode) and a private link for o2net.  On
each, hasf's OCFS2Membership registers the cluster and hasf's Filesystem
mounts the volume as a clone instance would; each node writes a file and
reads the one the other wrote while both have it mounted; then membership's
stop is refused while mounted, and everything stops in order.  Used by
tests/test_ocfs2_membership.py (asserts it) and `make demo` (shows it).
"""

import os
import subprocess

from lab.guest import Command, Disk, Guest
from lab.qemu import free_tcp_port
from lab.storage_path import GUEST_LAUNCHER, ocf

NODES = "node1:192.168.213.1 node2:192.168.213.2"
WAIT_FOR_FILE = """
import os, sys, time
path, limit = sys.argv[1], float(sys.argv[2])
end = time.monotonic() + limit
while not os.path.exists(path):
    if time.monotonic() > end:
        sys.exit("%s did not appear in %.0fs" % (path, limit))
    os.listdir(os.path.dirname(path))  # a directory read takes the cluster lock
    time.sleep(0.2)
print(open(path).read().strip())
"""
#: o2cb timing set by the agent (its heartbeat_threshold, idle_timeout_ms, keepalive_delay_ms)
TIMING = {"heartbeat/dead_threshold": "11", "idle_timeout_ms": "15000",
          "keepalive_delay_ms": "1000"}
EXPECTED = {"probe": 7, "start": 0, "monitor": 0, "o2nm": 0, "timing": 0, "fs-start": 0,
            "write": 0,
            "read": 0, "linger": 0, "busy-stop": 1, "fs-stop": 0, "regions": 0, "stop": 0,
            "after": 7}


class Outcome:
    def __init__(self, steps, listing):
        self.steps = steps        # {node: {step: GuestResult}}
        self.listing = listing    # debugfs.ocfs2 'ls -l /' of the shared volume afterwards

    def problems(self):
        """What differs from the expected run ([] when everything went as it must)."""
        found = []
        for me, other in (("node1", "node2"), ("node2", "node1")):
            got = self.steps[me]
            codes = {n: r.returncode for n, r in got.items()}
            if codes != EXPECTED:
                found.append("%s: %s" % (me, {n: (r.returncode, r.stderr[-400:])
                                              for n, r in got.items()
                                              if r.returncode != EXPECTED[n]}))
                continue
            if got["timing"].stdout.split() != list(TIMING.values()):
                found.append("%s: o2cb timing %r, not %r" % (me, got["timing"].stdout,
                                                            list(TIMING.values())))
            if got["o2nm"].stdout.split() != ["node1", "node2"]:
                found.append("%s: o2nm nodes %r" % (me, got["o2nm"].stdout))
            if got["read"].stdout.strip() != other:
                found.append("%s read %r, not %s's file" % (me, got["read"].stdout, other))
            if "still mounted on /mnt/shared" not in got["busy-stop"].stderr:
                found.append("%s: stop was not refused for the mount" % me)
        for name in ("from-node1", "from-node2"):
            if name not in self.listing:
                found.append("%s missing on the volume" % name)
        return found

    def table(self):
        rows = []
        for name in EXPECTED:
            rows.append("%-10s node1 rc=%-3s node2 rc=%-3s (want %d)" % (
                name, self.steps["node1"][name].returncode,
                self.steps["node2"][name].returncode, EXPECTED[name]))
        return "\n".join(rows)


def run(image, workdir, hasf_lib):
    shared = os.path.join(workdir, "shared.img")
    with open(shared, "wb") as handle:
        handle.truncate(256 << 20)
    subprocess.run(["mkfs.ocfs2", "-q", "-F", "-N", "2", "-L", "hasfshared", shared],
                   check=True, timeout=120, capture_output=True)
    port = free_tcp_port()
    disk = [Disk(shared, shared=True, serial="shared0")]
    node1 = Guest("node1", image=image, disks=disk, lan_listen=port,
                    lan_address="192.168.213.1/24")
    node2 = Guest("node2", image=image, disks=disk, lan_connect=port,
                    lan_address="192.168.213.2/24")
    with node1, node2:
        plans = {}
        for guest, me, other in ((node1, "node1", "node2"), (node2, "node2", "node1")):
            lib = guest.copy_in(hasf_lib, "hasf-lib")
            plans[me] = _node_steps(guest, lib, me, other)
            guest.start_batch([argv for _, argv in plans[me]], modules=["ocfs2"], timeout=600)
        results = {"node1": node1.wait_batch(), "node2": node2.wait_batch()}
    steps = {me: {name: r for (name, _), r in zip(plans[me], results[me])} for me in plans}
    listing = subprocess.run(["debugfs.ocfs2", "-R", "ls -l /", shared], capture_output=True,
                             text=True, timeout=60).stdout
    return Outcome(steps, listing)


def _node_steps(guest, lib, me, other):
    for name, module in (("OCFS2Membership", "hasf.ocfs2_membership.agent"),
                         ("Filesystem", "hasf.agents.filesystem")):
        with open(guest.host_path(name), "w") as handle:
            handle.write(GUEST_LAUNCHER % (lib, module))
        os.chmod(guest.host_path(name), 0o755)
    with open(guest.host_path("wait.py"), "w") as handle:
        handle.write(WAIT_FOR_FILE)
    members, fs = guest.guest_path("OCFS2Membership"), guest.guest_path("Filesystem")
    clone = {"CRM_meta_on_node": me, "CRM_meta_clone": "0", "CRM_meta_clone_max": "2"}
    o2 = dict(clone, nodes=NODES, cluster_name="hasf", heartbeat_threshold=11,
              idle_timeout_ms=15000, keepalive_delay_ms=1000)
    store = dict(clone, device="/dev/vdb", directory="/mnt/shared", fstype="ocfs2")
    wait = ["python3", guest.guest_path("wait.py")]
    return [
        ("probe", ocf(members, "monitor", **o2)),
        ("start", ocf(members, "start", **o2)),
        ("monitor", ocf(members, "monitor", 20000, **o2)),
        ("o2nm", ["ls", "/sys/kernel/config/cluster/hasf/node"]),
        ("timing", ["cat"] + ["/sys/kernel/config/cluster/hasf/" + f for f in TIMING]),
        ("fs-start", Command(tuple(ocf(fs, "start", **store)), timeout=120)),
        ("write", ["cp", "/etc/hostname", "/mnt/shared/from-" + me]),
        ("read", Command(tuple(wait + ["/mnt/shared/from-" + other, "120"]), timeout=130)),
        ("linger", ["sleep", "3"]),                         # the other node reads ours too
        ("busy-stop", ocf(members, "stop", **o2)),          # refused: OCFS2 mounted
        ("fs-stop", Command(tuple(ocf(fs, "stop", **store)), timeout=90)),
        ("regions", ["ls", "/sys/kernel/config/cluster/hasf/heartbeat"]),
        ("stop", Command(tuple(ocf(members, "stop", **dict(o2, CRM_meta_timeout="30000"))),
                         timeout=90)),
        ("after", ocf(members, "monitor", 20000, **o2)),
    ]
