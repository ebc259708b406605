"""hasf's lio-t agents against a real LIO: a Debian guest kernel, its own open-iscsi logging in.

One boot runs tests/support/lio_guest.py (the whole scenario, recorded step
by step); the tests below each assert one property on that record.  The host
has no target_core_mod, so nothing here can run without the guest.
"""

import json
import os

import pytest

from hasf.agents.scsi_identity import default_scsi_sn
from lab.guest import Command, Disk, Guest
from lab.hasf_lib import hasf_lib

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCHER = """#!/usr/bin/python3 -IS
import sys
sys.path[:0] = [%r]
from %s import main
sys.exit(main())
"""
MODULES = ["target_core_mod", "target_core_iblock", "target_core_file", "iscsi_target_mod",
           "iscsi_tcp", "sd_mod"]


@pytest.fixture(scope="module")
def guest_run(guest_image, tmp_path_factory):
    """The scenario's record (step -> rc, stderr, ...), from one guest boot."""
    work = tmp_path_factory.mktemp("lio")
    disk = os.path.join(work, "lun.img")
    with open(disk, "wb") as handle:
        handle.truncate(64 << 20)
    with Guest("lio", image=guest_image, disks=[Disk(disk, serial="hasflun")]) as guest:
        lib = guest.copy_in(hasf_lib(), "hasf-lib")
        os.makedirs(guest.host_path("agents"))
        for name, module in (("iSCSITarget", "hasf.agents.iscsi_target"),
                             ("iSCSILogicalUnit", "hasf.agents.iscsi_logical_unit")):
            with open(guest.host_path("agents", name), "w") as handle:
                handle.write(LAUNCHER % (lib, module))
            os.chmod(guest.host_path("agents", name), 0o755)
        driver = guest.copy_in(os.path.join(HERE, "support", "lio_guest.py"))
        result, = guest.run_batch(
            [Command(("python3", driver, guest.guest_path("agents"), "/dev/vdb"),
                     timeout=1200)], modules=MODULES, timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def rc(record, step):
    return record[step]["rc"]


def lu_descriptors(page83):
    """The logical-unit descriptors of a VPD page 0x83 (association 0), in order: what
    names the disk itself, as opposed to the target port it is reached through."""
    data = bytes.fromhex(page83)
    out, at = [], 4
    while at + 4 <= len(data):
        length = data[at + 3]
        if (data[at + 1] >> 4) & 3 == 0:
            out.append(data[at:at + 4 + length].hex())
        at += 4 + length
    return out


def test_ocf_tester_passes_both_agents_with_lio_t(guest_run):
    """ClusterLabs' ocf-tester against the guest's LIO.  Mutation: in LioTarget.state_of
    return ocf.SUCCESS for an absent target -> the tester's "monitor after stop" fails."""
    assert rc(guest_run, "ocf-tester-target") == 0, guest_run["ocf-tester-target"]["out"]
    assert rc(guest_run, "ocf-tester-lun") == 0, guest_run["ocf-tester-lun"]["out"]


def test_probes_of_nothing_are_not_running(guest_run):
    """LIO loaded, no such target: 7.  Mutation: in lio_configfs.absence return
    "unmounted" where configfs shows target/ -> the probes answer 1."""
    assert rc(guest_run, "probe-target") == 7 and rc(guest_run, "probe-lun") == 7


def test_chap_right_secret_logs_in_wrong_or_none_does_not(guest_run):
    """CHAP enforced in demo mode, mutual CHAP checked by the initiator.  Mutation: in
    LioTarget.plan write authentication "0" with CHAP (ClusterLabs' way) -> the login
    without CHAP succeeds."""
    assert rc(guest_run, "chap-start") == 0 and rc(guest_run, "chap-lun-start") == 0
    assert rc(guest_run, "login-none") != 0
    assert rc(guest_run, "login-wrong") != 0
    assert rc(guest_run, "login-mutual-wrong") != 0
    assert rc(guest_run, "login-right") == 0
    assert guest_run["disks-chap"]["0"]["dev"]


def test_no_secret_in_any_command_line_or_world_readable(guest_run):
    """/proc/*/cmdline sampled during every CHAP start, monitor and stop; configfs'
    password file made 0600.  Mutation: drop the chmod steps in lio.auth_steps -> the
    password file is 0644."""
    for scan in ("scan-chap-start", "scan-chap-stop", "scan-acl"):
        assert guest_run[scan]["samples"] > 10 and guest_run[scan]["hits"] == [], scan
    assert guest_run["chap-password-file"]["mode"] == "0o600"
    for step, result in guest_run.items():
        text = json.dumps(result)
        assert "Chap-Secret-0123" not in text or step.startswith("login"), step
        assert "File-Secret-abcdef" not in text or step.startswith("acl-login"), step


def test_stop_under_io_closes_sessions_and_leaves_nothing(guest_run):
    """Stop of LU and target while the initiator writes (and syncs) to the LUN.  Mutation: in
    lio.removal_of_target drop the rmdir of the IQN directory -> configfs still lists it."""
    assert guest_run["writing-at-stop"]  # the writer to the LUN was still running
    assert rc(guest_run, "lun-stop-under-io") == 0
    assert rc(guest_run, "target-stop-sessions") == 0
    assert guest_run["target-stop-sessions"]["seconds"] < 25
    assert rc(guest_run, "chap-after") == 7 and rc(guest_run, "chap-lun-after") == 7
    assert guest_run["configfs-after-chap"] == {"iqns": [], "stores": []}
    assert guest_run["configfs-end"] == {"iqns": [], "stores": []}


def test_allowed_initiators_are_enforced(guest_run):
    """Target ACLs refuse an initiator not listed; a LU's own allowed_initiators keep it
    from everyone else.  Mutation: in LioLogicalUnit.plan map into every ACL whatever
    allowed_initiators says -> LUN 2 shows up."""
    assert rc(guest_run, "acl-start") == 0 and rc(guest_run, "acl-login") == 0
    assert sorted(guest_run["disks-acl"]) == ["1"]
    assert rc(guest_run, "denied-login") == 24  # authorization failure
    # the ACL the LU made for the other initiator went with it; ours stayed
    assert [a for a in guest_run["acls-after-lun2-stop"] if "someone-else" in a] == []


def test_failed_start_leaves_nothing_behind(guest_run):
    """A start the kernel refuses halfway is undone.  Mutation: in LioTarget.start skip
    the configfs.undo call -> the half-made target stays in configfs."""
    assert rc(guest_run, "bad-start") == 1
    assert guest_run["configfs-after-bad-target"] == {"iqns": [], "stores": []}
    assert rc(guest_run, "bad-lun-start") == 1
    assert guest_run["configfs-after-bad-lun"]["stores"] == []
    assert guest_run["luns-after-bad-lun"] == []


def test_same_disk_after_failover_shows_the_same_identity(guest_run):
    """The LU under another IQN, numbered differently in configfs: pages 0x80 and the
    LU descriptors of 0x83 are identical.  Mutation: in LioLogicalUnit.backstore_steps
    drop the vpd_unit_serial write -> LIO's own serial (from the HBA numbering) differs."""
    first, second = guest_run["disks-chap"]["0"], guest_run["disks-failover"]["0"]
    assert first["pg80"] and first["pg80"] == second["pg80"]
    assert lu_descriptors(first["pg83"]) == lu_descriptors(second["pg83"])
    assert len(lu_descriptors(first["pg83"])) >= 2  # NAA + T10 vendor id
    assert default_scsi_sn("san-lun1").encode() in bytes.fromhex(first["pg80"])


def test_unreadable_or_hung_configfs_is_an_error_not_stopped(guest_run):
    """EACCES and a read that never returns: rc 1, never 7.  Mutation: in
    lio_configfs.read treat EACCES as absent -> the monitors answer 7."""
    for step in ("unreadable-target", "unreadable-lun"):
        assert rc(guest_run, step) == 1 and "Permission denied" in guest_run[step]["err"]
    assert rc(guest_run, "hung-target") == 1
    assert "did not finish" in guest_run["hung-target"]["err"]
    assert guest_run["hung-target"]["seconds"] < 20


def test_start_and_stop_mount_configfs_where_nothing_did(guest_run):
    """A node without systemd (the lab's) has LIO loaded after a start and configfs not
    mounted: start mounts it and creates the target; a monitor there cannot see (1, never
    7); stop mounts it and removes the target (found in the lab: stop answered 1 and the
    node was fenced).  Mutation: in LioTarget._remove raise CannotTell again for
    "unmounted" instead of mounting -> the stop answers 1 and the target stays."""
    assert rc(guest_run, "unmounted-start") == 0, guest_run["unmounted-start"]
    assert guest_run["unmounted-after-start"] is True
    assert rc(guest_run, "unmounted-monitor") == 1
    assert "configfs is not mounted" in guest_run["unmounted-monitor"]["err"]
    assert rc(guest_run, "unmounted-stop") == 0, guest_run["unmounted-stop"]
    assert "mounted configfs" in guest_run["unmounted-stop"]["err"]
    assert guest_run["unmounted-after-stop"] is False
