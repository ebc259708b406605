"""ocf:hasf:iscsi (the initiator).

On this host there is no iSCSI initiator kernel (no iscsi_tcp module) and no
open-iscsi: the host tests check what a node without a session sees -- a
clean probe, a clear ERR_INSTALLED, sessions read from a sysfs tree -- and
the sysfs reader against a tree laid out like the kernel's (a stand-in,
because the host kernel has no iSCSI transport).  The real logins run in
guests with a Debian kernel (tests/test_iscsi_guest.py).
"""

import os

import pytest

from hasf.agents import iscsi_sessions
from hasf.agents.iscsi_initiator import normal_portal
from support.ocfrun import AgentRun

IQN = "iqn.2026-12.org.hasf.test:san"


@pytest.fixture(scope="module")
def agent(hasf_agent):
    return hasf_agent("iscsi", "hasf.agents.iscsi_initiator")


@pytest.fixture
def initiator(agent, tmp_path):
    return AgentRun(agent, str(tmp_path / "rsc"), "initiator", "iscsi", portal="127.0.0.1",
                    target=IQN)


def test_node_without_open_iscsi(initiator):
    assert not os.path.exists("/sys/class/iscsi_session")  # the premise of this host test
    assert initiator.probe().rc == 7
    assert initiator("stop").rc == 0
    started = initiator("start", iscsiadm="/nonexistent/iscsiadm")
    assert started.rc == 5 and "open-iscsi" in started.reason
    assert initiator("monitor").rc == 7


def test_bad_parameters(initiator):
    result = initiator("start", portal="10.0.0.1:99999", target="not-an-iqn",
                       discovery_type="isns")
    assert result.rc == 6
    for name in ("portal", "target", "discovery_type"):
        assert name in result.reason
    assert initiator.probe(target="").rc == 7  # no session at all here


def test_portal_forms():
    assert normal_portal("10.0.2.2") == "10.0.2.2:3260"
    assert normal_portal("10.0.2.2:3261") == "10.0.2.2:3261"
    assert normal_portal("[fd00::1]:3260") == "[fd00::1]:3260"


def _kernel_like_tree(root, state="LOGGED_IN"):
    """sysfs as scsi_transport_iscsi lays it out for one session with one LUN (sdb)."""
    host = os.path.join(root, "devices", "platform", "host3", "session1")
    conn = os.path.join(host, "connection1:0", "iscsi_connection", "connection1:0")
    disk = os.path.join(host, "target3:0:0", "3:0:0:1", "block", "sdb")
    for path in (conn, disk):
        os.makedirs(path)
    for name, value in (("persistent_address", "10.0.2.2"), ("persistent_port", "3260")):
        with open(os.path.join(conn, name), "w") as handle:
            handle.write(value + "\n")
    cls = os.path.join(root, "class", "iscsi_session", "session1")
    os.makedirs(cls)
    for name, value in (("targetname", IQN), ("state", state)):
        with open(os.path.join(cls, name), "w") as handle:
            handle.write(value + "\n")
    os.symlink(host, os.path.join(cls, "device"))


def test_sessions_read_from_sysfs(tmp_path):
    root = str(tmp_path)
    assert iscsi_sessions.sessions(root) == []
    _kernel_like_tree(root)
    (session,) = iscsi_sessions.sessions(root)
    assert (session.target, session.state, session.portals, session.disks) == (
        IQN, "LOGGED_IN", ["10.0.2.2:3260"], ["sdb"])
    assert [s.name for s in iscsi_sessions.find(IQN, "10.0.2.2:3260", root)] == ["session1"]
    assert iscsi_sessions.find(IQN, "10.0.2.3:3260", root) == []
    assert iscsi_sessions.find(IQN + "2", "10.0.2.2:3260", root) == []
