"""CHAP logins of ocf:hasf:iscsi against a CHAP-requiring tgt target, in a guest kernel.

One guest boot runs every case (lab.chap_login has the steps and why they
are shaped so); each test below asserts one property of that run.  Guests
boot under TCG: run this module under `nice -n 10`.
"""

import pytest

from lab import chap_login
from lab.hasf_lib import hasf_lib


@pytest.fixture(scope="module")
def outcome(guest_image, hasf_agent, tmp_path_factory):
    host_agents = {name: hasf_agent(name, module) for name, module in (
        ("iSCSITarget", "hasf.agents.iscsi_target"),
        ("iSCSILogicalUnit", "hasf.agents.iscsi_logical_unit"))}
    workdir = tmp_path_factory.mktemp("chap")
    workdir.chmod(0o755)
    return chap_login.run(guest_image, str(workdir), host_agents, hasf_lib())


def test_every_step_answers_as_expected(outcome):
    """The whole table at once (each property has its own test below).  Mutation: none of
    its own -- every mutation named below also changes a code here."""
    codes = {n: c for n, c in outcome.codes.items() if chap_login.EXPECTED[n] is not None}
    want = {n: c for n, c in chap_login.EXPECTED.items() if c is not None}
    assert codes == want, outcome.shown()
    assert outcome.host_stops == (0, 0)


def test_right_chap_logs_in(outcome):
    """Mutation: _write_chap returning before iscsi_chap.apply also when CHAP is set -> the
    record holds no credentials and the target refuses the login ("right" answers 2).  (Not
    "authmethod = None" with the credentials written: iscsid answers a CHAP challenge
    whenever it has credentials, so that mutation still logs in.)"""
    assert outcome.codes["right"] == 0, outcome.shown()
    assert "wrote CHAP to /etc/iscsi/nodes/" in outcome.steps["right"].stderr, outcome.shown()
    assert outcome.codes["right-monitor"] == 0 and outcome.codes["stop"] == 0


def test_wrong_password_is_err_args_with_a_reason(outcome):
    """Mutation: _login_failed without its rc 24 branches (a GenericError with iscsiadm's
    summary) -> "wrong" answers 1 and the reason does not name the credentials."""
    assert outcome.codes["wrong"] == 2, outcome.shown()
    reason = outcome.reason("wrong")
    assert "CHAP login to %s" % chap_login.IQN in reason and chap_login.USER in reason
    assert "does not accept this user name and password" in reason


def test_no_chap_when_the_target_requires_it(outcome):
    """Mutation: _login_failed's `not chap.enabled` branch removed -> the reason names CHAP
    credentials that were never set instead of saying the target requires CHAP."""
    assert outcome.codes["no-chap"] == 2, outcome.shown()
    assert "the target requires CHAP (set username and password)" in outcome.reason("no-chap")


def test_credentials_do_not_outlive_their_configuration(outcome):
    """After CHAP logins wrote credentials into the record, a start without CHAP must not log
    in with what is left there: open-iscsi makes the record afresh from iscsid.conf on
    `-o new` (and discovery), which start runs before every login.  Mutation: _node_record
    skipping `-o new` when iscsi_chap.record_files() finds a record -> "cleared" logs in with
    the stale credentials (0, not 2)."""
    assert outcome.codes["cleared"] == 2, outcome.shown()
    assert "the target requires CHAP" in outcome.reason("cleared")
    for record in outcome.json("record-cleared").values():
        assert sorted(record["keys"]) == ["node.session.auth.authmethod",
                                          "node.session.auth.chap_algs"]
        assert record["values"]["node.session.auth.authmethod"] == "None"
        assert record["mode"] == "0600"


def test_mutual_chap(outcome):
    """Mutation: Chap.settings() leaving out the username_in/password_in lines -> the
    initiator does not check the target, and "mutual-wrong" logs in (0, not 2)."""
    assert outcome.codes["mutual"] == 0 and outcome.codes["mutual-stop"] == 0, outcome.shown()
    assert "wrote mutual CHAP to" in outcome.steps["mutual"].stderr
    assert outcome.codes["mutual-wrong"] == 2, outcome.shown()
    reason = outcome.reason("mutual-wrong")
    assert "mutual CHAP login" in reason and chap_login.TARGET_USER in reason


def test_password_files(outcome):
    """The *_file variants log in; a password file others can read is refused before any
    login, saying how to fix it.  Mutation: read_secret_file without its `st_mode & 0o077`
    check -> "file-open" logs in (0, not 2)."""
    assert outcome.codes["file"] == 0 and outcome.codes["mutual-file"] == 0, outcome.shown()
    assert outcome.codes["file-open"] == 2, outcome.shown()
    reason = outcome.reason("file-open")
    assert "can be read or changed by others (mode 0644)" in reason
    assert "chmod 600" in reason
    assert "Logging in" not in outcome.steps["file-open"].stderr


def test_the_record_is_root_only_and_holds_the_credentials(outcome):
    """Mutation: write_record creating its file 0644 (os.open mode and fchmod) -> the
    record after "right" is 0644."""
    records = outcome.json("record")
    assert records, outcome.steps["record"].stderr
    for record in records.values():
        assert record["mode"] == "0600"
        assert record["values"]["node.session.auth.authmethod"] == "CHAP"
        assert record["values"]["node.session.auth.username"] == chap_login.USER
        assert "node.session.auth.password" in record["keys"]


def test_no_secret_in_any_process_table_entry(outcome):
    """The scanner ran through every CHAP step and saw iscsiadm (so it could have seen a
    leak), and no secret in any argv or any environment but the agent's own OCF input.
    Mutation: hasf.ocf.main.run without hide_secrets -> iscsiadm inherits
    OCF_RESKEY_password and the scanner reports its environ."""
    scan = outcome.json("scan")
    assert scan["leaks"] == {}, scan["leaks"]
    assert scan["programs"].get("iscsiadm", 0) >= 3, scan
    assert scan["loops"] > 20, scan
    # the agent's own environ does hold a password parameter: execd's interface
    assert scan["agent_input"], scan


def test_no_secret_in_the_agents_stderr(outcome):
    """Mutation: hasf.secret.redact returning the text as it is, with _login_failed's reason
    carrying reveal(chap.password) -> "wrong" prints the wrong password."""
    for name, result in outcome.steps.items():
        for secret in chap_login.SECRETS:
            assert secret not in result.stderr, name
            if name != "scan":
                assert secret not in result.stdout, name
