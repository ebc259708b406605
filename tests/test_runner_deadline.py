"""Every runner call ends inside its deadline, ending of the child included.

Before: on expiry the runner sent TERM, waited the grace, sent KILL and waited 5 s,
then 5 s more to reap -- with a 2 s deadline a child that ignored TERM returned after
~3 s and one in D state after ~13 s, long after Pacemaker would have killed the agent
(a failed stop: the node is fenced, and nobody learns why).  Now the child's share of
the limit ends early enough that TERM, a grace, KILL and a short reap fit inside it,
and a child that survives SIGKILL is abandoned.

Mutation that brings the bug back (both timing tests fail): in `hasf.spawn.spawn`,
give the child the whole limit and wait as before --
`ends = (start + limit, start + limit + grace, start + limit + grace + 5.0)`
(or restore the old `kill_group(pid, grace)` with its fixed 5 s waits).

The D-state child reads a file on a FUSE filesystem whose daemon is stuck: it stands
in for a hung NFS mount or an iSCSI disk in recovery.  One stopped bindfs is not
enough -- a request the daemon has not read yet is dropped on SIGKILL -- so a second
bindfs is stacked on the first: its daemon reads the request and then blocks in the
frozen lower one, and the reader waits for an answer in uninterruptible sleep that
SIGKILL cannot end (state D, as on a dead NFS server with a hard mount).
"""

import contextlib
import io
import os
import time

import pytest

from hasf import ocf
from hasf.ocf import exitcodes
from hasf.deadline import Deadline
from hasf.runner import CommandTimeout, run
from support.hungfs import HungFuse, wait_blocked
from testagents.hasf_test_agent import HasfTest

#: what a call may take beyond its deadline: poll granularity and a loaded 2-core CI box
TOLERANCE = 0.15
IGNORES_TERM = "import signal, time; signal.signal(15, signal.SIG_IGN); time.sleep(60)"


def state_of(pid):
    with open("/proc/%d/stat" % pid) as handle:
        return handle.read().rsplit(")", 1)[1].split()[0]


@contextlib.contextmanager
def unkillable_reader_fs(workdir):
    """A directory under which a read blocks in D state, immune to SIGKILL until exit.

    Yields (path of a readable file, the lower HungFuse) -- frozen already."""
    lower = HungFuse(workdir, "lower")
    upper = HungFuse(workdir, "upper")
    with lower:
        upper.source = lower.mount_point  # bindfs over bindfs
        with open(lower.path("data"), "w") as handle:
            handle.write("payload\n")
        try:
            with upper:
                lower.freeze()
                try:
                    yield upper.path("data"), lower
                finally:
                    lower.thaw()  # let the upper daemon (and any reader) go first
        finally:
            lower.thaw()


def test_a_child_that_ignores_term_returns_inside_its_deadline():
    deadline = Deadline(2.0)
    start = time.monotonic()
    with pytest.raises(CommandTimeout) as info:
        run(["python3", "-c", IGNORES_TERM], deadline=deadline)
    took = time.monotonic() - start
    print("TERM-ignoring child, 2 s deadline: CommandTimeout after %.3fs" % took)
    assert took < 2.0 + TOLERANCE
    assert took > 1.4  # the child had most of its time: only the end budget was kept back
    assert "was killed" in info.value.message


def test_a_timeout_alone_is_bounded_the_same_way():
    start = time.monotonic()
    with pytest.raises(CommandTimeout):
        run(["python3", "-c", IGNORES_TERM], timeout=1.0)
    assert time.monotonic() - start < 1.0 + TOLERANCE


def test_a_child_in_d_state_is_abandoned_inside_its_deadline(workdir):
    pidfile = os.path.join(workdir, "reader.pid")
    with unkillable_reader_fs(workdir) as (path, _):
        deadline = Deadline(2.0)
        start = time.monotonic()
        with pytest.raises(CommandTimeout) as info:
            run(["sh", "-c", 'echo $$ > "$1"; exec cat "$2"', "sh", pidfile, path],
                deadline=deadline)
        took = time.monotonic() - start
        print("D-state child, 2 s deadline: CommandTimeout after %.3fs" % took)
        reader = int(open(pidfile).read())
        assert took < 2.0 + TOLERANCE
        assert "did not die after SIGKILL" in info.value.message
        assert "abandoned" in info.value.message
        # really abandoned: it is still there, stuck, after we returned
        assert state_of(reader) == "D"
    # thawed: it dies of its pending SIGKILL; reap it (it is this process's child)
    os.waitpid(reader, 0)


def test_an_agent_reports_a_d_state_child_before_pacemakers_timer(workdir, ocf_env):
    """The whole agent: a monitor with a 2 s operation timeout whose command hangs in
    D state answers ERR_GENERIC with a reason before 2 s -- the margin kept by the
    framework (hasf.ocf.environment.timeout_margin) is still there to report in."""
    pidfile = os.path.join(workdir, "reader.pid")

    with unkillable_reader_fs(workdir) as (path, _):
        class ReadsTheStore(HasfTest):
            def monitor(self):
                run(["sh", "-c", 'echo $$ > "$1"; exec cat "$2"', "sh", pidfile, path],
                    deadline=self.deadline)

        ocf_env["OCF_RESKEY_CRM_meta_timeout"] = "2000"
        out, err = io.StringIO(), io.StringIO()
        start = time.monotonic()
        rc = ocf.run(ReadsTheStore, ["agent", "monitor"], ocf_env, out, err)
        took = time.monotonic() - start
        print("agent monitor, 2 s op timeout, D-state child: rc %d after %.3fs" % (rc, took))
        assert rc == exitcodes.ERR_GENERIC
        assert took < 2.0 - 0.1  # answered with time to spare before the timeout
        assert "ocf-exit-reason:" in err.getvalue() and "abandoned" in err.getvalue()
        reader = int(open(pidfile).read())
        assert wait_blocked(reader, 0.1)
    os.waitpid(reader, 0)
