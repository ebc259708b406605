"""The ClusterLabs contract test: ocf-tester must pass the framework's test agent."""

import os
import subprocess
import tempfile


def test_ocf_tester_passes(test_agent):
    # ocf-tester's last step runs the agent as nobody: the state dir must be
    # world-writable, which pytest's 0700 tmp_path is not.
    with tempfile.TemporaryDirectory(prefix="hasf-ocf-state-") as state_dir:
        os.chmod(state_dir, 0o777)
        result = subprocess.run(
            ["ocf-tester", "-v", "-n", "hasftest1", "-o", "state=%s/s1" % state_dir,
             "-o", "fake=<&\"> $(id)", test_agent],
            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed all tests" in result.stdout
    for check in ("Checking for migrate_to action", "Checking for reload action"):
        assert check in result.stdout
    assert "does not support the migrate" not in result.stdout
    # OCF 1.1: HasfTest reloads by reload-agent; the legacy reload is (rightly) not there
    assert "does not support the reload action" in result.stdout
