"""ocf:hasf:iscsi's CHAP settings on the host: the record writer, password files, the lock.

The logins themselves, against a CHAP-requiring target, run in a guest kernel
(tests/test_iscsi_chap_guest.py); here the pieces that need no kernel: record
layouts as open-iscsi 2.1.8 lays them out (seen in the guest: an old-style
file for a static record, <address>,<port>,<tpgt>/<iface> for a discovered
one), the refusals of password files, and the parameter checks the agent
makes before it touches anything.
"""

import os
import threading
import time

import pytest

from hasf.agents import iscsi_chap
from hasf.deadline import Deadline
from hasf.secret import Secret
from lab.ocfrun import AgentRun

IQN = "iqn.2026-12.org.hasf.test:chap"
RECORD = """# BEGIN RECORD 2.1.8
node.name = %s
node.session.auth.authmethod = None
node.session.auth.chap_algs = MD5
node.conn[0].address = 10.0.2.2
# END RECORD
""" % IQN


def _lines(path):
    with open(path) as handle:
        return handle.read().splitlines()


def _layout(root):
    """A static (old-style file) record and a discovered one with two interfaces."""
    base = os.path.join(root, IQN)
    os.makedirs(os.path.join(base, "10.0.2.2,3260,1"))
    paths = [os.path.join(base, "10.0.2.2,3260"),
             os.path.join(base, "10.0.2.2,3260,1", "default"),
             os.path.join(base, "10.0.2.2,3260,1", "iface1")]
    os.makedirs(os.path.join(base, "10.0.2.20,3260,1"))  # another portal: not ours
    for path in paths + [os.path.join(base, "10.0.2.20,3260,1", "default")]:
        with open(path, "w") as handle:
            handle.write(RECORD)
        os.chmod(path, 0o644)
    return paths


def test_record_files_and_their_rewrite(tmp_path):
    """Mutation: record_files skipping the old-style file (the static record) -> one path
    fewer, and that record keeps authmethod None."""
    nodes, locks = str(tmp_path / "nodes"), str(tmp_path / "lock")
    paths = _layout(nodes)
    assert iscsi_chap.record_files(IQN, "10.0.2.2", 3260, nodes) == paths
    assert iscsi_chap.record_files(IQN, "10.0.2.9", 3260, nodes) == []
    chap = iscsi_chap.Chap("alice", Secret("pw one"), "tgt", Secret("pw-two"))
    changed = iscsi_chap.apply(chap, IQN, "10.0.2.2", 3260, Deadline(10), nodes, locks)
    assert changed == paths
    for path in paths:
        assert os.stat(path).st_mode & 0o777 == 0o600
        lines = _lines(path)
        assert lines[-1] == "# END RECORD" and lines[1] == "node.name = %s" % IQN
        assert lines[-6:-1] == ["node.session.auth.authmethod = CHAP",
                                "node.session.auth.username = alice",
                                "node.session.auth.password = pw one",
                                "node.session.auth.username_in = tgt",
                                "node.session.auth.password_in = pw-two"]
    other = os.path.join(nodes, IQN, "10.0.2.20,3260,1", "default")
    assert "CHAP" not in open(other).read()
    assert not os.path.exists(os.path.join(locks, "lock.write"))  # released
    assert [n for n in os.listdir(os.path.join(nodes, IQN)) if n.startswith(".")] == []
    # the same settings again: nothing to write
    assert iscsi_chap.apply(chap, IQN, "10.0.2.2", 3260, Deadline(10), nodes, locks) == []


def test_no_record_is_an_error(tmp_path):
    """Mutation: apply returning [] when record_files finds nothing -> the login would go on
    without the credentials, and no error names the missing record."""
    with pytest.raises(iscsi_chap.NodeRecordError, match="no node record for"):
        iscsi_chap.apply(iscsi_chap.Chap("a", Secret("pw-1")), IQN, "10.0.2.2", 3260, Deadline(5),
                         str(tmp_path), str(tmp_path / "lock"))


def test_the_database_lock_is_shared_with_iscsiadm(tmp_path):
    """A held lock.write (an iscsiadm writing) is waited for, and a stale one is an error
    naming it.  Mutation: DatabaseLock.__enter__ returning without os.link -> the write does
    not wait for the holder (the first assertion fails)."""
    nodes, locks = str(tmp_path / "nodes"), str(tmp_path / "lock")
    _layout(nodes)
    os.makedirs(locks)
    open(os.path.join(locks, "lock"), "w").close()
    os.link(os.path.join(locks, "lock"), os.path.join(locks, "lock.write"))
    released = []

    def release():
        time.sleep(0.5)
        released.append(time.monotonic())
        os.unlink(os.path.join(locks, "lock.write"))
    thread = threading.Thread(target=release)
    thread.start()
    iscsi_chap.apply(iscsi_chap.Chap("a", Secret("b")), IQN, "10.0.2.2", 3260, Deadline(10),
                     nodes, locks)
    assert released, "the record was written while iscsiadm's lock was held"
    thread.join()
    os.link(os.path.join(locks, "lock"), os.path.join(locks, "lock.write"))
    started = time.monotonic()
    with pytest.raises(iscsi_chap.NodeRecordError, match="stays locked"):
        iscsi_chap.apply(iscsi_chap.Chap("a", Secret("b")), IQN, "10.0.2.2", 3260,
                         Deadline(0.5), nodes, locks)
    assert time.monotonic() - started < 3


def _file(tmp_path, text, mode, name="pw"):
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def test_password_files(tmp_path):
    """Mutation: read_secret_file without the `st_mode & 0o077` check -> the 0640 file is
    read."""
    secret = iscsi_chap.read_secret_file(_file(tmp_path, "s3cret word\nignored\n", 0o600))
    assert secret.reveal() == "s3cret word"
    for mode in (0o640, 0o604, 0o620):
        path = _file(tmp_path, "x\n", mode, "open%o" % mode)
        with pytest.raises(iscsi_chap.CredentialFileError) as caught:
            iscsi_chap.read_secret_file(path)
        assert "chmod 600 %s" % path in caught.value.message
    os.symlink(_file(tmp_path, "x\n", 0o600, "real"), str(tmp_path / "link"))
    for path, why in ((str(tmp_path / "link"), "cannot open"),
                      (str(tmp_path / "none"), "cannot open"),
                      (_file(tmp_path, "\n", 0o600, "empty"), "is empty"),
                      (str(tmp_path), "cannot open|not a regular file"),
                      (_file(tmp_path, " padded \n", 0o600, "pad"), "white space")):
        with pytest.raises(iscsi_chap.CredentialFileError, match=why):
            iscsi_chap.read_secret_file(path)
    # what the file held is a known secret now: the refusal cannot show it
    with pytest.raises(iscsi_chap.CredentialFileError) as caught:
        iscsi_chap.read_secret_file(_file(tmp_path, " padded \n", 0o600, "pad2"))
    assert "padded" not in caught.value.message


def test_chap_values():
    """Mutation: is_chap_value without `text == text.strip()` -> " lead" passes (the record
    parser would strip it and the target would see another name)."""
    assert iscsi_chap.is_chap_value("iqn.2026-12.org.hasf:x")
    assert iscsi_chap.is_chap_value("with inner space")
    assert iscsi_chap.is_chap_value("x" * 255)
    for bad in ("", " lead", "trail ", "x" * 256, "new\nline", "tab\there"):
        assert not iscsi_chap.is_chap_value(bad)


@pytest.fixture
def initiator(hasf_agent, tmp_path):
    agent = hasf_agent("iscsi", "hasf.agents.iscsi_initiator")
    return AgentRun(agent, str(tmp_path / "rsc"), "initiator", "iscsi", portal="10.0.2.2",
                    target=IQN, iscsiadm="/bin/true")


@pytest.mark.parametrize("params, rc, words", [
    ({"username": "u"}, 6, "needs both username and password"),
    ({"password": "pw-1"}, 6, "needs both username and password"),
    ({"username": "u", "password": "pw-1", "password_file": "/etc/hostname"}, 6,
     "set password or password_file, not both"),
    ({"username": "u", "password": "pw-1", "username_in": "t"}, 6,
     "needs both username_in and password_in"),
    ({"username_in": "t", "password_in": "pw-2"}, 6, "mutual CHAP (username_in) needs username"),
    ({"username": " u"}, 6, "white space at either end"),
    ({"username": "u", "password_file": "/nonexistent/pw"}, 2, "cannot open password file"),
])
def test_chap_parameter_checks(initiator, params, rc, words):
    """Mutation: ISCSIInitiator._chap without its consistency checks -> validate-all
    answers 0 for half a configuration."""
    result = initiator("validate-all", **params)
    assert (result.rc, words in result.reason) == (rc, True), result


def test_an_open_password_file_is_refused_by_validate(initiator, tmp_path):
    """Mutation: _chap not mapping CredentialFileError to InvalidArgs -> rc 1 (a traceback-free
    generic error) instead of 2."""
    path = _file(tmp_path, "pw\n", 0o644)
    result = initiator("validate-all", username="u", password_file=path)
    assert result.rc == 2 and "chmod 600 %s" % path in result.reason, result
    assert initiator("validate-all", username="u",
                     password_file=_file(tmp_path, "pw\n", 0o600, "ok")).rc == 0


def test_secret_parameters_do_not_reach_children(initiator, tmp_path):
    """hasf.ocf.main removes secret parameters from the environment the agent's children
    inherit: here "iscsiadm" is a script that writes down its environment.  Mutation: run()
    without hide_secrets -> the child's environment holds OCF_RESKEY_password."""
    dump = tmp_path / "env.txt"
    script = tmp_path / "iscsiadm"
    script.write_text("#!/usr/bin/python3\nimport os\nwith open(%r, 'a') as f:\n"
                      "    f.write(repr(sorted(os.environ.items())))\n" % str(dump))
    script.chmod(0o700)
    initiator("start", discovery_type="static", username="u", password="child-must-not-see",
              iscsiadm=str(script))
    seen = dump.read_text()
    assert "OCF_RESKEY_username" in seen
    assert "child-must-not-see" not in seen and "OCF_RESKEY_password" not in seen


def test_a_portal_demanding_discovery_chap_is_refused_with_the_way_out(initiator, tmp_path):
    """hasf sends no discovery CHAP (iscsi_chap says why); iscsiadm's 24 at discovery is
    ERR_ARGS naming discovery_type=static.  Here "iscsiadm" is a script answering 24, as
    open-iscsi does for an unauthorized discovery.  Mutation: _node_record without its rc 24
    branch -> rc 1 and "discovery at ... failed: iscsiadm exited 24"."""
    script = tmp_path / "iscsiadm"
    script.write_text("#!/usr/bin/python3\nimport sys\nsys.exit(24)\n")
    script.chmod(0o700)
    result = initiator("start", username="u", password="pw-1", iscsiadm=str(script))
    assert result.rc == 2, result
    assert "requires CHAP for discovery" in result.reason
    assert "set discovery_type=static" in result.reason
