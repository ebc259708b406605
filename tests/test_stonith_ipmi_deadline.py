"""The native IPMI client honours the deadline for every request and for name resolution.

Real peers: an OpenIPMI ipmi_sim on loopback (lab.bmc.FileBmc) that is
frozen with SIGSTOP mid-session (SIGCONT in a finally), and, for the name,
a resolver that never answers: a child in its own network and mount
namespaces (unshare) whose /etc/resolv.conf points at a UDP socket on its
own loopback that reads nothing, with glibc told to wait 30 s x 3 tries.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from lab.bmc import FileBmc

from hasf.deadline import Deadline
from hasf.log import AgentLog
from hasf.stonith import ipmi, ipmi_native
from hasf.stonith.errors import DeviceError, FenceError

PASSWORD = "Dl7-ipmi.pw"
PER_TRY, RETRIES = 2.0, 2        # old bound per request: (RETRIES + 1) x PER_TRY = 6 s


@pytest.fixture
def bmc():
    with FileBmc(password=PASSWORD) as sim:
        yield sim


def _freeze(sim):
    os.kill(sim.proc.pid, signal.SIGSTOP)


def _thaw(sim):
    os.kill(sim.proc.pid, signal.SIGCONT)


def test_a_bmc_that_stops_answering_mid_session_costs_only_the_deadline(bmc):
    """Mutation that brings the bug back: in Session._exchange use self.timeout for every
    try regardless of self.deadline (the per-request timeout fixed at connect) -> ~6 s."""
    session = ipmi_native.Session("127.0.0.1", bmc.port, "admin", PASSWORD,
                                  timeout=PER_TRY, retries=RETRIES, deadline=Deadline(10))
    session.connect()
    try:
        assert session.power_state() is True           # the session works
        _freeze(bmc)
        session.deadline = Deadline(1.0)
        start = time.monotonic()
        with pytest.raises(DeviceError, match="did not answer"):
            session.power_state()
        assert time.monotonic() - start < 1.5
    finally:
        _thaw(bmc)
        session.close()


def test_fence_off_through_the_engine_fails_within_its_bounds(bmc, tmp_path):
    """The device keeps one session across the engine's calls; each call's deadline
    bounds it.  off with the BMC frozen after the first status: a failure, in time."""
    defn = ipmi.DEFINITION
    opts = defn.params.parse([("ip", "127.0.0.1"), ("ipport", str(bmc.port)),
                              ("username", "admin"), ("ipmitool_timeout", str(PER_TRY)),
                              ("ipmitool_retries", str(RETRIES)), ("login_timeout", "1"),
                              ("shell_timeout", "0.5"), ("power_timeout", "3"),
                              ("stonith_status_sleep", "0.2")])
    log = AgentLog(defn.agent, "test", {"HA_LOGFILE": str(tmp_path / "log")})
    from hasf.secret import Secret

    device = defn.factory(opts, Secret(PASSWORD), log)
    engine = defn.engine(opts, device, log)
    try:
        assert engine.status("node1") == "on"
        _freeze(bmc)
        start = time.monotonic()
        with pytest.raises(FenceError):
            engine.fence_off("node1")
        assert time.monotonic() - start < 1.5 + 0.5   # command deadline 1.5 s, not 6 s
        assert bmc.power is True                       # and nothing claimed it off
    finally:
        _thaw(bmc)
        device.close()


RESOLVER_CHILD = textwrap.dedent("""
    import json, os, socket, subprocess, sys, time
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    resolv = sys.argv[1]
    with open(resolv, "w") as handle:
        handle.write("nameserver 127.0.0.1\\noptions timeout:30 attempts:3\\n")
    subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"], check=True)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 53))          # receives, never answers
    from hasf.deadline import Deadline
    from hasf.stonith.errors import DeviceError
    from hasf.stonith.ipmi_native import Session
    session = Session("bmc-node1.hasf-unresolvable.test", 623, "admin", "x",
                      deadline=Deadline(1.5))
    start = time.monotonic()
    try:
        session.connect()
        outcome = "connected?"
    except DeviceError as exc:
        outcome = str(exc)
    print(json.dumps({"seconds": time.monotonic() - start, "outcome": outcome}))
""")


def test_name_resolution_is_bounded_by_the_deadline(tmp_path):
    """Mutation: call _socket.getaddrinfo directly in Session._resolve -> the child waits
    for glibc (30 s x 3) and the outer timeout fires."""
    import json

    script = tmp_path / "child.py"
    script.write_text(RESOLVER_CHILD)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    result = subprocess.run(["unshare", "--net", "--mount", "--propagation", "private",
                             sys.executable, str(script), str(tmp_path / "resolv.conf")],
                            capture_output=True, text=True, timeout=40, env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "resolving BMC name" in report["outcome"], report
    assert report["seconds"] < 2.5, report
