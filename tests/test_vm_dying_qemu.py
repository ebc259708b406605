"""A qemu that is dying is not gone (issue 9), and the process table read fail-closed.

The "qemu" is a real process that looks like the domain's qemu to the agent's
matcher: python3 exec'd with argv[0] "qemu-system-x86_64" and `-name
guest=NAME,debug-threads=on`.  One of its threads blocks reading a file on a
frozen FUSE mount (support.hungfs: the stand-in for a hung NFS/iSCSI/OCFS2
store), and its main thread ends with libc's pthread_exit.  /proc/PID then
shows a zombie leader (State Z) with an empty cmdline, and a live thread --
what a qemu whose main thread exited while an I/O thread is stuck on a dead
store looks like.  libvirtd is unreachable for the agent: its hypervisor URI
points at a socket with nothing behind it.
"""

import os
import subprocess
import time

import pytest

from test_vm_common import VmRun, agent_path, workdir  # noqa: F401

from hasf.kernel import processes

DYING = r'''
import ctypes, os, sys, threading
def stuck():
    with open(sys.argv[-1], "rb") as handle:   # blocks: the store is frozen
        handle.read()
threading.Thread(target=stuck).start()
ctypes.CDLL(None).pthread_exit(None)          # the main thread ends; the process lives on
'''


def _tasks(pid):
    """{tid: state} of process pid ({} once it is gone)."""
    found = {}
    for tid in processes.threads(pid) or ():
        state = processes.state(pid, tid)
        if state is not None:
            found[tid] = state
    return found


@pytest.fixture
def dying(workdir):  # noqa: F811
    from support.hungfs import HungFuse

    with HungFuse(workdir, "store") as fs:
        blocker = fs.path("image")
        with open(blocker, "wb") as handle:
            handle.write(b"x")
        fs.freeze()
        name = "hasfvm-dying-%d" % os.getpid()
        proc = subprocess.Popen(["qemu-system-x86_64", "-c", DYING, "-name",
                                 "guest=%s,debug-threads=on" % name, blocker],
                                executable="/usr/bin/python3", stdin=subprocess.DEVNULL)
        try:
            end = time.monotonic() + 10
            while time.monotonic() < end:
                tasks = _tasks(proc.pid)
                if tasks.get(proc.pid) == "Z" and any(s != "Z" for s in tasks.values()):
                    break
                time.sleep(0.05)
            assert processes.cmdline(proc.pid) == [], "the leader's cmdline is not empty"
            assert tasks.get(proc.pid) == "Z", tasks
            live = [tid for tid, state in tasks.items() if state != "Z"]
            assert live, tasks
            with open("/proc/%d/task/%d/wchan" % (proc.pid, live[0])) as handle:
                wchan = handle.read()
            assert "fuse" in wchan or "request_wait" in wchan or tasks[live[0]] == "D", wchan
            proc.name = name
            yield proc
        finally:
            proc.kill()
            fs.thaw()
            proc.wait(10)


def _unreachable(agent, workdir, name):  # noqa: F811
    """The agent for domain `name` with a hypervisor URI whose socket has nothing behind it."""
    socket = os.path.join(workdir, "no-libvirtd-sock")
    return VmRun(agent, os.path.join(workdir, "rsc"), name=name,
                 hypervisor="qemu+unix:///system?socket=%s" % socket)


def test_probe_of_a_dying_qemu_is_not_not_running(agent_path, dying, workdir):  # noqa: F811
    """The zombie leader with a live thread is found (through that thread): probe 1, never 7.

    Mutation: vm_procs.argv_of returning the leader's empty cmdline as it is (no look at
    the live threads, no CannotRead) -- the process matches nothing and the probe answers
    7 ("no hypervisor process for domain ... on this node").
    """
    probe = _unreachable(agent_path, workdir, dying.name).probe(timeout=5000)
    assert probe.rc == 1, probe
    assert "qemu process %d" % dying.pid in probe.reason, probe
    assert processes.alive(dying.pid)


def test_stop_ends_a_dying_qemu_before_answering_0(agent_path, dying, workdir):  # noqa: F811
    """stop kills it (SIGTERM/SIGKILL end a FUSE wait) and answers 0 only once no thread lives.

    Mutation: the old stop (psutil cmdlines, re-matched after the kill) or argv_of without
    the thread fallback -- stop answers 0 at once ("no hypervisor process ... it is
    stopped") while the stuck thread still lives, and the assertion on _tasks fails.
    """
    run = _unreachable(agent_path, workdir, dying.name)
    stopped = run("stop", timeout=8000)
    live = {tid: s for tid, s in _tasks(dying.pid).items() if s != "Z"}
    assert stopped.rc == 0, stopped
    assert live == {}, live  # nothing of it runs: at most the reaped-any-moment zombie
    assert not processes.alive(dying.pid)
    assert "sending SIGTERM to qemu process %d" % dying.pid in stopped.stderr, stopped
    dying.wait(5)  # its parent (this test) reaps it: /proc/PID is gone
    assert not processes.exists(dying.pid)
    assert run.probe(timeout=5000).rc == 7  # and now, provably, nothing runs the domain


def test_process_table_reads_fail_closed(tmp_path, monkeypatch):
    """Only ENOENT/ENOTDIR/ESRCH read as "gone"; any other error is CannotRead.

    A /proc stand-in where a pid's cmdline is a directory (EISDIR, an error that is not
    absence) must raise; a vanished pid is None.  Mutation: processes._read returning None
    for every OSError -- the unreadable process reads as gone.
    """
    from hasf.kernel import CannotRead

    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "cmdline").mkdir()
    monkeypatch.setattr(processes, "PROC", str(tmp_path))
    assert processes.pids() == [42]
    with pytest.raises(CannotRead):
        processes.cmdline(42)
    assert processes.cmdline(43) is None
    assert processes.exists(43) is False
    assert processes.alive(43) is False
