"""A LUN's SCSI identity across a SAN failover, as an initiator sees it.

Two tgtd daemons (each its own control port and loopback portal) stand in
for two SAN nodes; on each, iSCSITarget and iSCSILogicalUnit are started by
the agents with the same resource instance names and the same backing file
-- what Pacemaker does when the SAN group moves.  The initiator is the
host's libiscsi: iscsi-inq for the decoded pages, tests/support/vpd.py for
their bytes.

What tgt 1.0.85 puts in the pages (seen here, and in tgt's spc.c):
0x80 is scsi_sn; 0x83 holds scsi_id as a T10 vendor designator, an NAA
IEEE Registered Extended (type 6) designator computed from scsi_id, and an
NAA locally-assigned (type 3) designator that is (tid << 32 | lun).  udev's
scsi_id and multipath take the type 6 one first, so the WWID follows
scsi_id; the type 3 one follows the tid, which matches only when the target
has the same tid on both nodes (set iSCSITarget's tid).
"""

import hashlib
import os
import subprocess

import pytest

from hasf.agents.tgt import parse_targets
from lab.ocfrun import AgentRun
from lab.tgtd import Tgtd
from support.vpd import designators, vpd_page

IQN = "iqn.2026-12.org.hasf.test:san"
LU_INSTANCE = "san-lun1"
T10_VENDOR, NAA = 1, 3


@pytest.fixture(scope="module")
def agents(hasf_agent):
    return {name: hasf_agent(name, module) for name, module in (
        ("iSCSITarget", "hasf.agents.iscsi_target"),
        ("iSCSILogicalUnit", "hasf.agents.iscsi_logical_unit"))}


@pytest.fixture
def nodes():
    with Tgtd() as node_a, Tgtd() as node_b:
        yield node_a, node_b


@pytest.fixture
def disk(workdir):
    path = os.path.join(workdir, "shared.img")
    with open(path, "wb") as handle:
        handle.truncate(16 << 20)
    return path


def export(agents, workdir, node, name, disk, target_params=None, **lu_params):
    """Start the SAN group on `node` as Pacemaker would there; returns the target's tid."""
    rsc = os.path.join(workdir, "rsc-" + name)
    target = AgentRun(agents["iSCSITarget"], rsc, "san-target", "iSCSITarget", iqn=IQN,
                      tgt_control_port=node.control_port, **(target_params or {}))
    lun = AgentRun(agents["iSCSILogicalUnit"], rsc, LU_INSTANCE, "iSCSILogicalUnit",
                   target_iqn=IQN, lun=1, path=disk, tgt_control_port=node.control_port)
    started = target("start")
    assert started.rc == 0, started
    started = lun("start", **lu_params)
    assert started.rc == 0, started
    assert lun("monitor").rc == 0
    return parse_targets(node.show())[IQN].tid


def occupy_tid_1(node):
    """Another target at tid 1: this node's SAN target gets tid 2 (the lowest free)."""
    assert node.tgtadm("--op", "new", "--mode", "target", "--tid", "1", "--targetname",
                       IQN + "-other").returncode == 0


def inq(node, page):
    proc = subprocess.run(["iscsi-inq", "-e", "1", "-c", str(page), node.url(IQN, 1)],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc
    return proc.stdout


def test_identity_survives_a_failover_to_another_tid(agents, nodes, workdir, disk):
    """The same LU, exported on two nodes under different tids, shows the same unit
    serial number (0x80) and the same scsi_id designators (0x83) -- ClusterLabs'
    defaults from the instance name.  Only tgt's NAA-local designator differs, and it
    is (tid << 32 | lun) by construction.  Mutation: in ISCSILogicalUnit._identity,
    return only the explicitly given values (tgt's defaults): 0x80 is then "beaf11" on
    one node and "beaf21" on the other, and the T10 designators differ."""
    node_a, node_b = nodes
    occupy_tid_1(node_b)
    assert export(agents, workdir, node_a, "a", disk) != \
        export(agents, workdir, node_b, "b", disk)

    serial = hashlib.md5(LU_INSTANCE.encode(), usedforsecurity=False).hexdigest()[:8]
    assert inq(node_a, 0x80) == inq(node_b, 0x80)
    assert "Unit Serial Number:[" in inq(node_a, 0x80)
    assert inq(node_a, 0x80).rstrip().endswith(" %s]" % serial), inq(node_a, 0x80)
    assert vpd_page(node_a.portal, IQN, 1, 0x80) == vpd_page(node_b.portal, IQN, 1, 0x80)
    assert "Designator:[%s]" % LU_INSTANCE[:16] in inq(node_a, 0x83)

    page_a = designators(vpd_page(node_a.portal, IQN, 1, 0x83))
    page_b = designators(vpd_page(node_b.portal, IQN, 1, 0x83))
    differing = [d for d in page_a if d not in page_b]
    naa_types = [(code_set, kind, value[0] >> 4) for code_set, kind, value in differing]
    assert naa_types == [(1, NAA, 3)], (page_a, page_b)  # only the NAA-local one
    t10 = [value for _, kind, value in page_a if kind & 0x0f == T10_VENDOR]
    assert t10 and t10[0].rstrip(b"\0") == LU_INSTANCE[:16].encode()


def test_same_tid_whole_pages_identical(agents, nodes, workdir, disk):
    """With the target's tid set (the same on both nodes) every byte of both pages is
    the same.  Mutation: iSCSITarget._free_tid ignoring the tid parameter (tid = None):
    the targets get tids 1 and 2, and page 0x83's NAA-local designator differs."""
    node_a, node_b = nodes
    occupy_tid_1(node_b)
    tids = [export(agents, workdir, node, name, disk, {"tid": 7})
            for node, name in ((node_a, "a"), (node_b, "b"))]
    for page in (0x80, 0x83):
        assert vpd_page(node_a.portal, IQN, 1, page) == vpd_page(node_b.portal, IQN, 1, page)
    assert tids == [7, 7]


def test_explicit_identity_wins(agents, nodes, workdir, disk):
    """scsi_id and scsi_sn given: they are what the initiator sees, on every node.
    Mutation: identity(instance) without the explicit values (scsi_identity.identity
    called with the instance only): 0x80 shows the MD5 default instead."""
    node_a, node_b = nodes
    occupy_tid_1(node_b)
    for node, name in ((node_a, "a"), (node_b, "b")):
        export(agents, workdir, node, name, disk, scsi_id="explicit-id-42",
               scsi_sn="sn424242")
        assert inq(node, 0x80).rstrip().endswith(" sn424242]"), inq(node, 0x80)
        assert "Designator:[explicit-id-42]" in inq(node, 0x83)
    assert vpd_page(node_a.portal, IQN, 1, 0x80) == vpd_page(node_b.portal, IQN, 1, 0x80)
