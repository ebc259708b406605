"""hasf's lio-t agents where the host can check them: no LIO here (no target_core_mod).

The real LIO runs in tests/test_iscsi_lio_guest.py; these cover what needs no
kernel target: the answer when LIO is not loaded, parameter checks, and the
plan/undo mechanism on a plain directory.
"""

import os
import subprocess
import sys

from hasf.agents import lio_configfs as cfs

IQN = "iqn.2026-12.org.hasf.test:lio"


def agent(module, action, tmp_path, **params):
    env = {"PATH": os.environ["PATH"], "OCF_ROOT": "/usr/lib/ocf", "HA_RSCTMP": str(tmp_path),
           "OCF_RESOURCE_INSTANCE": "lio-test", "OCF_RESKEY_CRM_meta_timeout": "10000"}
    env.update({"OCF_RESKEY_" + k: str(v) for k, v in params.items()})
    code = "import sys; from hasf.agents.%s import main; sys.exit(main())" % module
    return subprocess.run([sys.executable, "-c", code, action], env=env, capture_output=True,
                          text=True, timeout=60)


def test_monitor_without_lio_loaded_is_not_running(tmp_path):
    """No target_core_mod on this host: provably no LIO target, rc 7 for both agents.
    Mutation: in lio_configfs.absence return "unmounted" instead of "not-loaded" -> rc 1."""
    assert not os.path.exists("/sys/module/target_core_mod")
    done = agent("iscsi_target", "monitor", tmp_path, implementation="lio-t", iqn=IQN)
    assert done.returncode == 7, done.stderr
    done = agent("iscsi_logical_unit", "monitor", tmp_path, implementation="lio-t",
                 target_iqn=IQN, lun=0, path="/dev/null")
    assert done.returncode == 7, done.stderr


def test_settings_of_the_other_implementation_are_refused(tmp_path):
    """liot_bstype with tgt, tgt_bstype with lio-t: rc 6, naming them.  Mutation: drop the
    refuse_given call in ISCSILogicalUnit.validate -> tgt's validate-all passes."""
    done = agent("iscsi_logical_unit", "validate-all", tmp_path, implementation="tgt",
                 target_iqn=IQN, lun=1, path="/dev/null", liot_bstype="fileio")
    assert done.returncode == 6 and "liot_bstype" in done.stderr, done.stderr
    done = agent("iscsi_logical_unit", "validate-all", tmp_path, implementation="lio-t",
                 target_iqn=IQN, lun=0, path="/dev/null", tgt_bstype="aio")
    assert done.returncode == 6 and "tgt_bstype" in done.stderr, done.stderr


def test_chap_needs_one_secret_and_lio_names(tmp_path):
    """A password and a password file at once, or an address in allowed_initiators (LIO
    admits by name only): rc 6.  Mutation: in lio_target.credential drop the "not both"
    check -> validate-all passes."""
    secret = tmp_path / "pw"
    secret.write_text("from-a-file\n")
    done = agent("iscsi_target", "validate-all", tmp_path, implementation="lio-t", iqn=IQN,
                 incoming_username="u", incoming_password="Pw-123456",
                 incoming_password_file=str(secret))
    assert done.returncode == 6 and "not both" in done.stderr, done.stderr
    assert "Pw-123456" not in done.stderr
    done = agent("iscsi_target", "validate-all", tmp_path, implementation="lio-t", iqn=IQN,
                 allowed_initiators="10.0.0.1")
    assert done.returncode == 6 and "by name" in done.stderr, done.stderr


def test_a_failed_plan_is_undone_completely(tmp_path):
    """Directories and links made before the failing step are removed again, in reverse.
    Mutation: in lio_configfs.undo_plan skip symlinks -> the rmdir below them fails."""
    base = str(tmp_path / "t")
    plan = [("mkdir", base), ("mkdir", base + "/lun"),
            ("symlink", base + "/lun/link", "/nonexistent"),
            ("write", base + "/missing/attr", "1")]
    done, failure = cfs.run_plan(plan, False)
    assert done == 3 and failure is not None
    configfs = cfs.Configfs()
    assert configfs.undo(plan, done, "test")
    assert not os.path.lexists(base)


def test_block_backstore_of_a_file_is_refused(tmp_path):
    """liot_bstype=block (the default) on a regular file: rc 6 naming fileio, before the
    kernel refuses it obscurely.  Mutation: drop the _is_file check in
    LioLogicalUnit.validate -> validate-all passes."""
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 4096)
    done = agent("iscsi_logical_unit", "validate-all", tmp_path, implementation="lio-t",
                 target_iqn=IQN, lun=0, path=str(image))
    assert done.returncode == 6 and "liot_bstype=fileio" in done.stderr, done.stderr
    done = agent("iscsi_logical_unit", "validate-all", tmp_path, implementation="lio-t",
                 target_iqn=IQN, lun=0, path=str(image), liot_bstype="fileio")
    assert done.returncode == 0, done.stderr
