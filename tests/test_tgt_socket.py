"""The monitor's read of tgtd through its management socket (hasf.agents.tgt_socket).

Against a real tgtd: the socket's answer is exactly what tgtadm prints, for
targets with LUNs, ACLs and live sessions.  Against a unix socket this test
makes at tgtd's path: a peer that accepts and never answers, closes early,
refuses or answers garbage makes the monitor fail (rc 1) within its timeout
-- never rc 7, which would tell Pacemaker the target is gone.
"""

import contextlib
import os
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from hasf.agents import tgt_socket
from hasf.deadline import Deadline
from lab.ocfrun import AgentRun
from lab.tgtd import SOCKET_DIR, Tgtd, _control_port_free

IQN = "iqn.2026-12.org.hasf.test:sock"
OCF_GENERIC, OCF_NOT_RUNNING = 1, 7


@pytest.fixture(scope="module")
def target_agent(hasf_agent):
    return hasf_agent("iSCSITarget", "hasf.agents.iscsi_target")


def test_the_socket_answer_is_what_tgtadm_prints(workdir):
    """Two targets with LUNs, name and address ACLs, and an initiator's live session:
    byte for byte the text `tgtadm --op show --mode target` prints (and "" for a
    tgtd without targets).  Mutation: report_text returning text.rstrip() (or any
    other rewriting of tgtd's text) -> differs."""
    with Tgtd() as tgtd:
        assert tgt_socket.show_targets(tgtd.control_port) == tgtd.show() == ""
        disk = os.path.join(workdir, "lu.img")
        with open(disk, "wb") as handle:
            handle.truncate(16 << 20)
        for tid, name in ((1, IQN), (2, IQN + "2")):
            for args in (("--op", "new", "--mode", "target", "--tid", str(tid),
                          "--targetname", name),
                         ("--op", "new", "--mode", "logicalunit", "--tid", str(tid),
                          "--lun", "1", "--backing-store", disk),
                         ("--op", "bind", "--mode", "target", "--tid", str(tid),
                          "--initiator-address", "127.0.0.1"),
                         ("--op", "bind", "--mode", "target", "--tid", str(tid),
                          "--initiator-name", "iqn.2026-12.org.hasf.test:ini")):
                assert tgtd.tgtadm(*args).returncode == 0, args
        perf = subprocess.Popen(["iscsi-perf", "-m", "4", "-b", "8", tgtd.url(IQN, 1)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            end = time.monotonic() + 10
            while "I_T nexus: " not in tgtd.show():
                assert time.monotonic() < end, "iscsi-perf never logged in"
                time.sleep(0.1)
            shown = tgt_socket.show_targets(tgtd.control_port)
            expected = tgtd.show()
        finally:
            os.killpg(perf.pid, signal.SIGKILL)
            perf.wait(5)
    for part in ("LUN: 1\n", "Backing store path: %s\n" % disk, "127.0.0.1\n",
                 "iqn.2026-12.org.hasf.test:ini\n", "Connection: 0\n"):
        assert part in shown, part
    assert shown == expected


@contextlib.contextmanager
def fake_tgtd(behaviour):
    """A unix socket at tgtd's path for a free control port, served by `behaviour(conn)`
    in a thread for every connection; tgtd's lock is left free."""
    port = next(p for p in range(31100, 31300) if _control_port_free(p)
                and not os.path.exists(os.path.join(SOCKET_DIR, "socket.%d" % p)))
    path = os.path.join(SOCKET_DIR, "socket.%d" % port)
    os.makedirs(SOCKET_DIR, exist_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    held = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            with contextlib.suppress(OSError):
                behaviour(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        server.close()
        os.unlink(path)
        for conn in held:
            conn.close()


def _silent(conn):
    conn.recv(4096)  # takes the request, never answers


def _answer(header, body=b"", close=True):
    def behaviour(conn):
        conn.recv(4096)
        conn.sendall(struct.pack("=II", *header) + body)
        if close:
            conn.close()
    return behaviour


#: case -> (the peer's behaviour, what the reason says)
GARBAGE = {
    # mutation: drop the `if err:` check -> an empty report, rc 7
    "refusal": (_answer((22, 8)), "refused"),
    # mutation: _receive returning what arrived when the peer closes -> "" -> rc 7
    "short body": (_answer((0, 8 + 200), b"\0"), "closed"),
    # mutation: report_text without its line check -> parse_targets finds nothing -> rc 7
    "not a report": (_answer((0, 8 + 13), b"hello world\n\0"), "not a target report"),
    # mutation: report_text without the NUL check -> a report cut short passes, rc 0
    "no NUL": (_answer((0, 8 + len(IQN) + 11), b"Target 1: %s\n" % IQN.encode()),
               "NUL-terminated"),
    # mutation: no upper bound on the announced length -> "closed after 0 of 4294967287"
    "absurd length": (_answer((0, 0xFFFFFFFF)), "announced"),
    # closed before or after the request arrived: a reset or an early end, either way
    # an error naming the socket (the paths of "short body")
    "closed at once": (lambda conn: conn.close(), "/run/tgtd/socket."),
}


@pytest.mark.parametrize("case", sorted(GARBAGE))
def test_a_wrong_answer_is_an_error_never_not_running(case, target_agent, workdir):
    """Each wrong answer: the monitor (and a probe) fails with rc 1 and a reason;
    Pacemaker must not read it as "the target is gone".  Mutations: see GARBAGE."""
    behaviour, reason = GARBAGE[case]
    with fake_tgtd(behaviour) as port:
        run = AgentRun(target_agent, os.path.join(workdir, "rsc"), "t", "iSCSITarget",
                       iqn=IQN, tgt_control_port=port)
        for result in (run("monitor", timeout=5000), run.probe(timeout=5000)):
            assert result.rc == OCF_GENERIC and result.seconds < 4, (case, result)
            assert reason in result.reason, result


def test_a_socket_that_never_answers_fails_within_the_deadline(target_agent, workdir):
    """A peer that accepts the request and never answers: an error within the
    monitor's timeout, not rc 7 and not a hang.  Mutation: `except _TIMEOUT` in
    show_targets raising TgtdUnreachable -> tgtd's lock is free -> rc 7."""
    with fake_tgtd(_silent) as port:
        start = time.monotonic()
        with pytest.raises(tgt_socket.TgtSocketError, match="did not answer"):
            tgt_socket.show_targets(port, Deadline(0.5))
        assert time.monotonic() - start < 1.0
        run = AgentRun(target_agent, os.path.join(workdir, "rsc"), "t", "iSCSITarget",
                       iqn=IQN, tgt_control_port=port)
        hung = run("monitor", timeout=3000)
        assert hung.rc == OCF_GENERIC and hung.seconds < 3.0, hung
        assert "did not answer" in hung.reason


def test_no_listener_is_decided_by_tgtds_lock(target_agent, workdir):
    """A socket file nobody listens on (tgtd died, or is starting): with tgtd's lock
    held that is "cannot tell" (rc 1); with the lock free, tgtd provably does not run
    (rc 7).  Mutation: _show_through_socket without the daemon_running() check -> rc 7
    while the lock is held."""
    port = next(p for p in range(31300, 31500) if _control_port_free(p)
                and not os.path.exists(os.path.join(SOCKET_DIR, "socket.%d" % p)))
    path = os.path.join(SOCKET_DIR, "socket.%d" % port)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, nothing listens: ECONNREFUSED
    open(path + ".lock", "w").close()
    run = AgentRun(target_agent, os.path.join(workdir, "rsc"), "t", "iSCSITarget", iqn=IQN,
                   tgt_control_port=port)
    try:
        locker = subprocess.Popen(  # tgtd takes a POSIX lock; another process must hold it
            ["python3", "-c", "import fcntl,os,sys,time; fd=os.open(sys.argv[1],os.O_RDWR);"
             "fcntl.lockf(fd,fcntl.LOCK_EX); print('held',flush=True); time.sleep(60)",
             path + ".lock"], stdout=subprocess.PIPE, text=True)
        try:
            assert locker.stdout.readline().strip() == "held"
            held = run("monitor", timeout=5000)
            assert held.rc == OCF_GENERIC and "is running but" in held.reason, held
        finally:
            locker.kill()
            locker.wait(5)
        assert run("monitor", timeout=5000).rc == OCF_NOT_RUNNING
    finally:
        os.unlink(path)
        os.unlink(path + ".lock")


def test_the_request_is_tgtadms():
    """The bytes tgtadm 1.0.85 sends for `--lld iscsi --op show --mode target` (taken
    with strace): 120 bytes, mode 1, op 2, lld "iscsi", len 120, tid -1, lun ~0.
    Mutation: ALL_LUNS = 0 -> other bytes."""
    expected = (struct.pack("=II", 1, 2) + b"iscsi".ljust(64, b"\0")
                + struct.pack("=Ii", 120, -1) + b"\0" * 8 + b"\xff" * 8 + b"\0" * 24)
    assert tgt_socket.request() == expected and len(expected) == 120


def test_a_monitor_imports_neither_the_runner_nor_socket(target_agent, workdir):
    """What a monitor exec loads (python -X importtime, the launcher's interpreter and
    flags): tgt_socket, but not hasf.runner (no command to run) nor `socket` (~12 ms of
    imports; tgt_socket uses _socket).  Mutation: `import socket` in tgt_socket, or
    hasf.agents.tgt importing hasf.runner at module level again."""
    with Tgtd() as tgtd:
        run = AgentRun(target_agent, os.path.join(workdir, "rsc"), "t", "iSCSITarget",
                       iqn=IQN, tgt_control_port=tgtd.control_port)
        with open(target_agent) as handle:
            python, flags = handle.readline()[2:].split()
        proc = subprocess.run([python, flags, "-X", "importtime", target_agent, "monitor"],
                              env=run.env(10000, 20000), capture_output=True, text=True,
                              timeout=30)
    assert proc.returncode == OCF_NOT_RUNNING, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "hasf.agents.tgt_socket" in imported and "_socket" in imported
    assert not {"hasf.runner", "socket", "subprocess"} & imported
