"""hasf.runner with real processes: no shell, LC_ALL=C, deadlines, process groups, secrets."""

import os
import time

import psutil
import pytest

from hasf.deadline import Deadline
from hasf.runner import CommandFailed, CommandNotFound, CommandTimeout, resolve, run
from hasf.secret import Secret


def test_argv_is_not_interpreted_by_a_shell(tmp_path):
    marker = tmp_path / "pwned"
    result = run(["echo", "; touch %s; $(id) `id` | cat" % marker])
    assert result.rc == 0
    assert result.stdout == "; touch %s; $(id) `id` | cat\n" % marker
    assert not marker.exists()


def test_string_argv_is_refused():
    with pytest.raises(TypeError):
        run("echo hi")


def test_program_resolved_to_absolute_path_including_sbin():
    result = run(["true"])
    assert os.path.isabs(result.argv[0])
    assert resolve("crm_verify", {"PATH": "/nonexistent"}) == "/usr/sbin/crm_verify"


def test_locale_is_c():
    result = run(["sh", "-c", 'echo "$LC_ALL $LANG"'])
    assert result.stdout.strip() == "C C"


def test_not_found_is_typed():
    with pytest.raises(CommandNotFound):
        run(["hasf-definitely-missing-tool"])
    with pytest.raises(CommandNotFound):
        run(["/nonexistent/tool"])


def test_stdin_payload_and_rc():
    result = run(["sh", "-c", "cat; exit 3"], input="payload")
    assert result.stdout == "payload" and result.rc == 3 and not result.ok
    with pytest.raises(CommandFailed) as info:
        run(["sh", "-c", "echo bad >&2; exit 4"], check=True)
    assert "exited 4: bad" in str(info.value)


def test_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    script = "sleep 60 & echo $! > %s; wait" % pidfile
    start = time.monotonic()
    with pytest.raises(CommandTimeout):
        run(["sh", "-c", script], timeout=0.5)
    assert time.monotonic() - start < 5
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "grandchild survived the timeout"
        time.sleep(0.05)


def test_timeout_is_capped_by_the_operation_deadline():
    deadline = Deadline(0.5)
    start = time.monotonic()
    with pytest.raises(CommandTimeout):
        run(["sleep", "30"], timeout=30, deadline=deadline)
    assert time.monotonic() - start < 3
    with pytest.raises(CommandTimeout):
        run(["true"], deadline=Deadline(0))


def test_secret_refused_in_argv():
    with pytest.raises(TypeError):
        run(["echo", Secret("hunter2")])


def test_secret_travels_by_env_and_stdin_and_is_redacted():
    password = Secret("s3cr3t-value")
    result = run(["sh", "-c", 'echo "env=$PW"; cat; echo "err=$PW" >&2; exit 1'],
                 env={"PW": password}, input=password)
    assert "s3cr3t-value" not in result.stdout + result.stderr
    assert result.stdout.count("****") == 2
    with pytest.raises(CommandFailed) as info:
        run(["sh", "-c", 'echo "$PW" >&2; exit 1'], env={"PW": password}, check=True)
    assert "s3cr3t-value" not in str(info.value)


def test_secret_never_in_proc_cmdline(tmp_path):
    """While a command that received a secret runs, no process shows it in its cmdline."""
    import threading

    password = Secret("cmdline-canary-81723")
    found = []

    def scan():
        for _ in range(20):
            for proc in psutil.process_iter(["cmdline"]):
                if any("cmdline-canary-81723" in part for part in proc.info["cmdline"] or []):
                    found.append(proc.info["cmdline"])
            time.sleep(0.02)

    scanner = threading.Thread(target=scan)
    scanner.start()
    run(["sh", "-c", 'read pw; sleep 0.5'], input=password, env={"X": password})
    scanner.join()
    assert found == []


def test_log_receives_redacted_command_line():
    lines = []

    class Log:
        def debug(self, text):
            lines.append(text)

    Secret("tok-123")
    run(["echo", "tok-123"], log=Log())
    assert lines and "tok-123" not in lines[0] and "****" in lines[0]
