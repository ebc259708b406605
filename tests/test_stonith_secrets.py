"""password_script output is never shown, not even when the script fails.

A script that prints the password and then exits non-zero used to have its
last output line quoted in the error: the password reached stderr and
HA_LOGFILE.  Its output is not a known secret yet (it never became one), so
redaction cannot catch it; only not showing it does.  The fence agent and the
cluster-glue plugin are the installed executables (packaging/install.py),
exec'd as cluster software execs them; the script is a real /bin/sh.
"""

import time

import pytest

from test_stonith_helpers import agent, plugin, run, stdin_of

from hasf.deadline import Deadline
from hasf.stonith import secrets
from hasf.stonith.errors import ConfigError

PASSWORD = "Zq9-ScriptPW"
LEAKY = "/bin/sh -c 'echo %s; echo %s >&2; exit 3'" % (PASSWORD, PASSWORD)


def _logs(tmp_path):
    return {"HA_LOGFILE": str(tmp_path / "ha.log"), "HA_DEBUGLOG": str(tmp_path / "debug.log")}


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return ""


def test_fence_agent_never_shows_a_failing_scripts_output(tmp_path):
    """Mutation that brings the leak back: in secrets.run_script raise
    ConfigError("password_script failed: %s" % result.summary())."""
    logs = _logs(tmp_path)
    debug_file = tmp_path / "debug_file.log"
    text = stdin_of(action="off", port="node1", ip="127.0.0.1", username="admin",
                    password_script=LEAKY, verbose=1, debug_file=debug_file)
    result = run([agent("ipmi")], stdin=text, env=logs)
    assert result.returncode == 1
    assert "exited with code 3" in result.stderr, result.stderr
    seen = {"stdout": result.stdout, "stderr": result.stderr, "HA_LOGFILE":
            _read(logs["HA_LOGFILE"]), "HA_DEBUGLOG": _read(logs["HA_DEBUGLOG"]),
            "debug_file": _read(debug_file)}
    assert "exited with code 3" in seen["HA_LOGFILE"]     # the log was written to
    assert [name for name, text in seen.items() if PASSWORD in text] == []


def test_glue_plugin_never_shows_a_failing_scripts_output(tmp_path):
    logs = _logs(tmp_path)
    env = dict(logs, ipaddr="127.0.0.1", userid="admin", password_script=LEAKY,
               hostname="node1")
    result = run([plugin("ipmi"), "off", "node1"], env=env)
    assert result.returncode == 1
    everything = result.stdout + result.stderr + _read(logs["HA_LOGFILE"]) + \
        _read(logs["HA_DEBUGLOG"])
    assert "exited with code 3" in everything
    assert PASSWORD not in everything


@pytest.mark.parametrize("script, says", [
    ("/bin/sh -c 'echo %s; kill -9 $$'" % PASSWORD, "killed by signal 9"),
    ("/bin/sh -c 'echo %s; exec sleep 30'" % PASSWORD, "did not finish in time"),
    ("/bin/sh -c 'exit 0'", "printed no password"),
])
def test_script_failure_says_how_not_what(script, says):
    start = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        secrets.run_script(script, Deadline(1.5))
    assert says in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert time.monotonic() - start < 5      # the deadline bounds the script


def test_script_success_is_the_first_line():
    got = secrets.run_script("/bin/sh -c 'echo %s; echo second'" % PASSWORD, Deadline(5))
    assert got.reveal() == PASSWORD and str(got) == "****"
