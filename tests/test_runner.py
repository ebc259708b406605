"""hasf.runner with real processes: no shell, LC_ALL=C, deadlines, process groups, secrets."""

import os
import time

import psutil
import pytest

from hasf.deadline import Deadline
from hasf.runner import (CommandFailed, CommandNotFound, CommandSpawnFailed, CommandTimeout,
                         resolve, run)
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


def test_secret_travels_by_env_and_stdin_and_is_redacted_where_shown():
    """The tool gets the clear value and its output stays parseable; what is shown is not.
    (tests/test_runner_redaction.py has the parsing case in full.)"""
    password = Secret("s3cr3t-value")
    result = run(["sh", "-c", 'echo "env=$PW"; cat; echo "err=$PW" >&2; exit 1'],
                 env={"PW": password}, input=password)
    assert result.stdout == "env=s3cr3t-value\ns3cr3t-value"
    assert "s3cr3t-value" not in result.summary() and "****" in result.summary()
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


# --- the posix_spawn path (hasf.spawn): what subprocess used to guarantee ---------------------
def test_payloads_larger_than_a_pipe_buffer_both_ways():
    payload = "x" * (1 << 20) + "\n"
    result = run(["sh", "-c", "cat; cat /proc/self/status >&2"], input=payload)
    assert result.rc == 0 and result.stdout == payload and "Pid:" in result.stderr


def test_child_that_ignores_its_stdin_payload():
    result = run(["true"], input="y" * (1 << 20))
    assert result.rc == 0


def test_runs_in_a_session_of_its_own():
    result = run(["sh", "-c", "ps -o sid= -p $$; ps -o pid= -p $$"])
    sid, pid = result.stdout.split()
    assert sid == pid and int(sid) != os.getsid(0)


def test_inherited_descriptors_are_closed_in_the_child(tmp_path):
    leaked = os.open(str(tmp_path / "f"), os.O_CREAT | os.O_WRONLY)
    os.set_inheritable(leaked, True)  # as if pacemaker-execd had left one open
    try:
        result = run(["ls", "/proc/self/fd"])
    finally:
        os.close(leaked)
    assert sorted(int(fd) for fd in result.stdout.split()) == [0, 1, 2, 3]  # 3: ls's own dir


def test_daemon_holding_the_pipes_is_bounded(tmp_path):
    """A child that exits but leaves a grandchild holding stdout: the call still ends
    at its timeout and the grandchild (same process group) is killed."""
    pidfile = tmp_path / "daemon.pid"
    start = time.monotonic()
    with pytest.raises(CommandTimeout):
        run(["sh", "-c", "sleep 60 & echo $! > %s; exit 0" % pidfile], timeout=0.5)
    assert time.monotonic() - start < 3
    daemon = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while psutil.pid_exists(daemon) and psutil.Process(daemon).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the daemonised grandchild survived"
        time.sleep(0.05)


def test_not_executable_is_typed_and_not_not_found(tmp_path):
    """A file that exists but cannot run is not "not installed": a probe must not read
    it as "not running here".  Mutation: make `_unusable` return CommandNotFound."""
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\n")
    with pytest.raises(CommandSpawnFailed) as info:
        run([str(plain)])
    assert not isinstance(info.value, CommandNotFound)
    assert "not an executable file" in info.value.message


def test_busy_executable_is_a_spawn_failure_not_not_found(tmp_path):
    """ETXTBSY from the real exec (a binary still open for writing, e.g. mid-upgrade):
    the program is there, so this is CommandSpawnFailed (OCF_ERR_GENERIC), never
    CommandNotFound (OCF_ERR_INSTALLED, "not running here" on a probe).
    Mutation: in runner._spawn_error, return CommandNotFound for every errno."""
    import errno
    import shutil

    busy = tmp_path / "busy-true"
    shutil.copy("/bin/true", str(busy))
    os.chmod(str(busy), 0o755)
    writer = os.open(str(busy), os.O_WRONLY)
    try:
        with pytest.raises(CommandSpawnFailed) as info:
            run([str(busy)])
    finally:
        os.close(writer)
    assert not isinstance(info.value, CommandNotFound)
    assert info.value.errno == errno.ETXTBSY and "ETXTBSY" in info.value.message
    assert run([str(busy)]).rc == 0  # the same program, once closed, runs


def test_missing_program_vanishing_after_resolve_is_not_found(tmp_path):
    """ENOENT from the exec itself (a script whose #! interpreter is missing) is still
    "not installed": only that errno (and ENOTDIR) is."""
    script = tmp_path / "orphan"
    script.write_text("#!/nonexistent/interpreter\n")
    os.chmod(str(script), 0o755)
    with pytest.raises(CommandNotFound):
        run([str(script)])


def test_runner_does_not_import_subprocess():
    """The cost it exists to avoid: ~5 ms of imports on every agent exec."""
    import subprocess
    import sys

    probe = subprocess.run([sys.executable, "-I", "-S", "-c",
                            "import sys; sys.path[:0] = %r; import hasf.runner; "
                            "print(sorted({'subprocess', 'signal', 'enum', 're'} & "
                            "set(sys.modules)))" % [os.path.dirname(os.path.dirname(
                                os.path.abspath(__file__)))]],
                           capture_output=True, text=True, timeout=30)
    assert probe.stdout.strip() == "[]", probe.stderr


OUT_OF_PROCESSES = """
import resource, sys
sys.path.insert(0, sys.argv[1])
resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
from hasf.runner import CommandError, run
try:
    run(["true"])
    print("ran")
except CommandError as exc:
    print(type(exc).__name__, exc.errno)
"""


def test_out_of_processes_is_a_spawn_failure_not_not_installed(workdir):
    """EAGAIN from a real fork (a user at RLIMIT_NPROC -- a fork bomb, a full pid table):
    the issue's case.  `true` is installed; the node is merely out of processes, so this
    must never become OCF_ERR_INSTALLED.  Runs as nobody: root ignores RLIMIT_NPROC.
    Mutation: in runner._spawn_error, return CommandNotFound for every errno."""
    import errno
    import shutil
    import subprocess

    import hasf

    # nobody may not read the checkout or the venv (CI clones under /root): a world-readable
    # copy of the hasf package, run by the system interpreter
    shutil.copytree(os.path.dirname(os.path.abspath(hasf.__file__)),
                    os.path.join(workdir, "hasf"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    for top, dirs, files in os.walk(workdir):
        for name in dirs + files:
            os.chmod(os.path.join(top, name), 0o755)
    probe = subprocess.run(["/usr/bin/python3", "-I", "-c", OUT_OF_PROCESSES, workdir],
                           user="nobody", capture_output=True, text=True, timeout=30)
    assert probe.stdout.split() == ["CommandSpawnFailed", str(errno.EAGAIN)], probe.stderr
