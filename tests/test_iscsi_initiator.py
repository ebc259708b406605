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
from lab.ocfrun import AgentRun

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


def test_host_name_portal_is_refused(initiator):
    """sysfs shows sessions by address: with a host name the start logged in and then timed
    out, and stop/probes never saw the session.  Mutation: accept any host characters in
    iscsi_initiator._is_portal -> validate-all answers 0."""
    for portal in ("san.example.com", "san:3260", "localhost"):
        result = initiator("validate-all", portal=portal)
        assert result.rc == 6 and "host name" in result.reason, (portal, result)
    assert initiator("validate-all", portal="[fd00::1]:3261").rc in (0, 5)  # 5: no iscsiadm
    # a stop with an unusable portal still answers from what the kernel shows: no session
    # to this target anywhere -> stopped
    assert initiator("stop", portal="san.example.com").rc == 0


UNREADABLE_SYSFS = r"""
import os, subprocess, sys
subprocess.run(["mount", "-t", "tmpfs", "fake-sysfs", "/sys/class"], check=True)
session = "/sys/class/iscsi_session/session1"
os.makedirs(session)
open(session + "/targetname", "w").write(sys.argv[2] + "\n")
os.mkdir(session + "/state")        # reading it fails with EISDIR: not "absent"
env = dict(os.environ, OCF_RESKEY_portal="127.0.0.1", OCF_RESKEY_target=sys.argv[2],
           OCF_RESKEY_CRM_meta_interval="0", OCF_RESOURCE_INSTANCE="initiator",
           HA_RSCTMP=sys.argv[3], OCF_ROOT="/usr/lib/ocf")
for action in ("monitor", "stop"):
    done = subprocess.run([sys.argv[1], action], env=env, capture_output=True, text=True)
    print(action, done.returncode, done.stderr.replace("\n", " | "))
"""


def test_an_unreadable_sysfs_is_cannot_tell_not_stopped(agent, tmp_path):
    """sysfs that answers with an error other than ENOENT (here EISDIR, in a private mount
    namespace with a tmpfs over /sys/class -- the host has no iSCSI transport) must make
    the probe and the stop fail, never answer 'not running'/'stopped'.
    Mutation: in hasf.kernel.attrs.read_attr return None for every OSError -> the probe
    answers 7 and the stop 0."""
    import subprocess

    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "python3", "-c",
                           UNREADABLE_SYSFS, agent, IQN, str(tmp_path / "rsc")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    codes = {line.split()[0]: line for line in done.stdout.splitlines()}
    assert codes["monitor"].split()[1] == "1", done.stdout
    assert codes["stop"].split()[1] == "1", done.stdout
    assert "Is a directory" in codes["monitor"]


def test_kernel_attrs_absent_only_for_enoent(tmp_path):
    """The rule itself, against real errors: ENOENT/ENOTDIR -> absent; EISDIR, EACCES (read as
    nobody), anything else -> CannotRead."""

    from hasf.kernel import CannotRead
    from hasf.kernel.attrs import entries, read_attr

    assert read_attr(str(tmp_path / "missing")) is None
    (tmp_path / "file").write_text("x")
    assert read_attr(str(tmp_path / "file" / "below")) is None  # ENOTDIR
    assert entries(str(tmp_path / "missing")) == []
    with pytest.raises(CannotRead, match="Is a directory"):
        read_attr(str(tmp_path))
    assert entries(str(tmp_path / "file")) == []  # ENOTDIR: nothing there either
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "state").write_text("LOGGED_IN")
    os.chmod(str(tmp_path), 0o755)
    os.seteuid(65534)  # as nobody, for one call: root reads everything (real uid stays 0)
    try:
        with pytest.raises(CannotRead, match="Permission denied"):
            read_attr(str(private / "state"))
    finally:
        os.seteuid(0)
