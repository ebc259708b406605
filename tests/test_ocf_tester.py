"""The ClusterLabs contract test: ocf-tester must pass the framework's test agent."""

import os
import subprocess


def test_ocf_tester_passes(test_agent):
    import tempfile

    state_dir = tempfile.mkdtemp(prefix="hasf-ocf-state-")
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
