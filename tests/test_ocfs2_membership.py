"""ocf:hasf:OCFS2Membership: the o2cb cluster registered from the CIB's node list.

Host: no o2nm (no kernel modules), so only what a node without it sees.
Guests (Debian kernels, support.guest): two nodes share one raw disk with an
OCFS2 volume (the o2cb stack, not local mode) and a private link for o2net;
on each, hasf's OCFS2Membership registers the cluster, hasf's Filesystem
mounts the volume as a clone instance would, each node reads the file the
other wrote while both have it mounted, and everything stops in order.
"""

import os
import shutil
import subprocess
import tempfile

import pytest

from support.ocfrun import AgentRun
from support.storage_path import GUEST_LAUNCHER, ocf
from testagents import hasf_site, install_test_agent

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


@pytest.fixture(scope="module")
def agent():
    directory = tempfile.mkdtemp(prefix="hasf-o2-agent-")
    os.chmod(directory, 0o755)
    yield install_test_agent(directory, "OCFS2Membership", "hasf.ocfs2_membership.agent")
    shutil.rmtree(directory, ignore_errors=True)


def test_node_without_o2cb(agent, tmp_path):
    """This host has no o2nm: probe 7, stop 0, start ERR_INSTALLED; bad lists refused."""
    run = AgentRun(agent, str(tmp_path / "rsc"), "o2", "OCFS2Membership", nodes=NODES,
                   cluster_name="hasf")
    node1 = {"OCF_RESKEY_CRM_meta_on_node": "node1"}
    assert run.probe(extra=node1).rc == 7
    assert run("stop", extra=node1).rc == 0
    if not os.path.isdir("/sys/kernel/config/cluster"):
        started = run("start", extra=node1)
        assert started.rc == 5 and "ocfs2_nodemanager" in started.reason, started
    bad = run("start", extra=node1, nodes="node1:10.0.0.1 node1:10.0.0.2 x:not-an-ip")
    assert bad.rc == 6 and "nodes=" in bad.reason
    stranger = run("start", extra={"OCF_RESKEY_CRM_meta_on_node": "node9"})
    assert stranger.rc == 2 and "node9" in stranger.reason  # not in nodes: not here


@pytest.fixture(scope="module")
def image():
    from support.guest import GuestImageUnavailable, guest_image

    try:
        return guest_image()
    except GuestImageUnavailable as exc:
        pytest.skip("no guest image: %s" % exc)


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
    o2 = dict(clone, nodes=NODES, cluster_name="hasf")
    store = dict(clone, device="/dev/vdb", directory="/mnt/shared", fstype="ocfs2")
    from support.guest import Command

    wait = ["python3", guest.guest_path("wait.py")]
    return [
        ("probe", ocf(members, "monitor", **o2)),
        ("start", ocf(members, "start", **o2)),
        ("monitor", ocf(members, "monitor", 20000, **o2)),
        ("o2nm", ["ls", "/sys/kernel/config/cluster/hasf/node"]),
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


EXPECTED = {"probe": 7, "start": 0, "monitor": 0, "o2nm": 0, "fs-start": 0, "write": 0,
            "read": 0, "linger": 0, "busy-stop": 1, "fs-stop": 0, "regions": 0, "stop": 0, "after": 7}


def test_two_nodes_mount_one_ocfs2_volume(image, tmp_path):
    from support import guest as G

    shared = str(tmp_path / "shared.img")
    with open(shared, "wb") as handle:
        handle.truncate(256 << 20)
    subprocess.run(["mkfs.ocfs2", "-q", "-F", "-N", "2", "-L", "hasfshared", shared],
                   check=True, timeout=120, capture_output=True)
    port = G.free_tcp_port()
    disk = [G.Disk(shared, shared=True, serial="shared0")]
    node1 = G.Guest("node1", image=image, disks=disk, lan_listen=port,
                    lan_address="192.168.213.1/24")
    node2 = G.Guest("node2", image=image, disks=disk, lan_connect=port,
                    lan_address="192.168.213.2/24")
    with node1, node2:
        plans = {}
        for guest, me, other in ((node1, "node1", "node2"), (node2, "node2", "node1")):
            lib = guest.copy_in(hasf_site()[0], "hasf-lib")
            plans[me] = _node_steps(guest, lib, me, other)
            guest.start_batch([argv for _, argv in plans[me]], modules=["ocfs2"], timeout=600)
        results = {"node1": node1.wait_batch(), "node2": node2.wait_batch()}
    for me, other in (("node1", "node2"), ("node2", "node1")):
        got = {name: r for (name, _), r in zip(plans[me], results[me])}
        shown = {n: (r.returncode, r.stdout[-200:], r.stderr[-600:]) for n, r in got.items()}
        assert {n: r.returncode for n, r in got.items()} == EXPECTED, (me, shown)
        assert got["o2nm"].stdout.split() == ["node1", "node2"]
        assert got["read"].stdout.strip() == other  # the other node's hostname, via OCFS2
        assert "still mounted on /mnt/shared" in got["busy-stop"].stderr
    listing = subprocess.run(["debugfs.ocfs2", "-R", "ls -l /", shared], capture_output=True,
                             text=True, timeout=60).stdout
    assert "from-node1" in listing and "from-node2" in listing


def test_nodes_join_by_reload_and_notify(image, tmp_path):
    """A node appended to `nodes` is added online by reload (o2cb can add, not remove);
    a post-start notification for a node missing from o2nm adds it, one missing from
    `nodes` is reported; a conflicting change is refused; stop unregisters."""
    from support.guest import Guest

    one = "node1:10.0.2.15"   # the guest's user-mode network address: o2net listens on it
    two = one + " node2:10.0.2.99"
    with Guest("node1", image=image) as guest:
        lib = guest.copy_in(hasf_site()[0], "hasf-lib")
        with open(guest.host_path("OCFS2Membership"), "w") as handle:
            handle.write(GUEST_LAUNCHER % (lib, "hasf.ocfs2_membership.agent"))
        os.chmod(guest.host_path("OCFS2Membership"), 0o755)
        agent = guest.guest_path("OCFS2Membership")
        base = {"CRM_meta_on_node": "node1", "cluster_name": "hasf"}
        post_start = dict(base, CRM_meta_notify_type="post", CRM_meta_notify_operation="start",
                          CRM_meta_notify_start_uname="node2")
        listing = ["ls", "/sys/kernel/config/cluster/hasf/node"]
        steps = [
            ("start", ocf(agent, "start", nodes=one, **base)), ("ls1", listing),
            ("notify-unknown", ocf(agent, "notify", nodes=one, **post_start)), ("ls2", listing),
            ("reload", ocf(agent, "reload", nodes=two, **base)), ("ls3", listing),
            ("notify-known", ocf(agent, "notify", nodes=two, **post_start)),
            ("conflict", ocf(agent, "reload", nodes=one + " node2:10.0.2.98", **base)),
            ("num2", ["cat", "/sys/kernel/config/cluster/hasf/node/node2/num"]),
            ("stop", ocf(agent, "stop", nodes=two, **base)),
            ("gone", ["ls", "/sys/kernel/config/cluster"]),
        ]
        results = guest.run_batch([argv for _, argv in steps], modules=["ocfs2"], timeout=300)
    got = {name: r for (name, _), r in zip(steps, results)}
    codes = {n: r.returncode for n, r in got.items()}
    assert codes == {"start": 0, "ls1": 0, "notify-unknown": 0, "ls2": 0, "reload": 0,
                     "ls3": 0, "notify-known": 0, "conflict": 1, "num2": 0, "stop": 0,
                     "gone": 0}, {n: r.stderr[-500:] for n, r in got.items()}
    assert got["ls1"].stdout.split() == got["ls2"].stdout.split() == ["node1"]
    assert "node2 started but is not in nodes" in got["notify-unknown"].stderr
    assert got["ls3"].stdout.split() == ["node1", "node2"]
    assert "registered as" in got["conflict"].stderr
    assert got["num2"].stdout.strip() == "1"
    assert got["gone"].stdout.split() == []
