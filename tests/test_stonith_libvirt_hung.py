"""fence_hasf_libvirt against a libvirtd frozen with SIGSTOP after the device connected.

A private libvirtd (lab.libvirtd.PrivateLibvirtd: its own socket,
netns and qemu processes), so the shared one stays up for everyone else.
The device is driven in-process so the freeze lands exactly after connect
(and, in one case, exactly between destroy and the status poll); each case
runs in a helper thread joined with a bound, so an unbounded libvirt call
fails the test instead of hanging it.  libvirtd is always SIGCONT'ed in a
finally.

Mutation that brings the bug back: make hasf.virt.Hypervisor._bounded call
func(*args) directly (no helper thread / bound), as the old device did for
everything but connect -> the calls block until the join bound: failure.
"""

import os
import signal
import threading
import time

import pytest
from lab.libvirtd import PrivateLibvirtd, call_with_timeout, diskless_domain_xml, \
    unique_domain_name

from hasf.log import AgentLog
from hasf.stonith import libvirt as device_module
from hasf.stonith.errors import FenceError

pytestmark = pytest.mark.libvirt
POWER_TIMEOUT, LOGIN, SHELL = 4.0, 2.0, 1.0


@pytest.fixture(scope="module")
def private():
    with PrivateLibvirtd() as lv:
        yield lv


@pytest.fixture
def domain(private):
    import libvirt

    conn = call_with_timeout(libvirt.open, private.uri, timeout=15)
    name = unique_domain_name("hasfhung")
    dom = call_with_timeout(conn.defineXML, diskless_domain_xml(name), timeout=30)
    call_with_timeout(dom.create, timeout=60)
    yield name
    os.kill(private.proc.pid, signal.SIGCONT)
    try:
        if call_with_timeout(dom.isActive, timeout=15):
            call_with_timeout(dom.destroy, timeout=15)
        call_with_timeout(dom.undefine, timeout=15)
    finally:
        call_with_timeout(conn.close, timeout=15)


def _engine(private, tmp_path):
    defn = device_module.DEFINITION
    opts = defn.params.parse([("uri", private.uri), ("power_timeout", str(POWER_TIMEOUT)),
                              ("login_timeout", str(LOGIN)), ("shell_timeout", str(SHELL)),
                              ("stonith_status_sleep", "0.2")])
    log = AgentLog(defn.agent, "test", {"HA_LOGFILE": str(tmp_path / "log")})
    device = defn.factory(opts, None, log)
    return defn.engine(opts, device, log), device


def _bounded(func, limit):
    """(seconds, exception or result) of func() in a thread joined within limit."""
    box = []

    def target():
        start = time.monotonic()
        try:
            box.append((time.monotonic() - start, func()))
        except Exception as exc:  # noqa: BLE001 -- the test inspects it
            box.append((time.monotonic() - start, exc))
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit)
    assert box, "the call was still blocked after %.0f s: not bounded" % limit
    return box[0]


def _frozen(private):
    os.kill(private.proc.pid, signal.SIGSTOP)


def test_every_call_after_connect_is_bounded(private, domain, tmp_path):
    engine, device = _engine(private, tmp_path)
    assert engine.status(domain) == "on"          # connected, the domain seen
    _frozen(private)
    try:
        for name, call in (("off", lambda: engine.fence_off(domain)),
                           ("reboot", lambda: engine.reboot(domain)),
                           ("on", lambda: engine.on(domain)),
                           ("status", lambda: engine.status(domain)),
                           ("list", engine.list), ("monitor", engine.monitor)):
            seconds, outcome = _bounded(call, POWER_TIMEOUT + 20)
            assert isinstance(outcome, FenceError), (name, outcome)
            assert seconds <= POWER_TIMEOUT + 1.5, (name, seconds)
            assert "did not return" in str(outcome) or "no time left" in str(outcome), \
                (name, outcome)
    finally:
        os.kill(private.proc.pid, signal.SIGCONT)
        device.close()


def test_freeze_between_destroy_and_the_poll_fails_within_power_timeout(private, domain,
                                                                       tmp_path):
    """The destroy reached libvirtd; then it hangs: off is not verified -> failure, in time."""
    engine, device = _engine(private, tmp_path)
    assert engine.status(domain) == "on"
    destroy = device.power_off

    def destroy_then_freeze(target, deadline, reboot=False):
        destroy(target, deadline, reboot)
        _frozen(private)
    device.power_off = destroy_then_freeze
    try:
        seconds, outcome = _bounded(lambda: engine.fence_off(domain), POWER_TIMEOUT + 20)
        assert isinstance(outcome, FenceError), outcome
        assert "did not power off within" in str(outcome), outcome
        assert seconds <= POWER_TIMEOUT + 1.5 + LOGIN + SHELL, seconds
    finally:
        os.kill(private.proc.pid, signal.SIGCONT)
        device.close()


def test_installed_agent_against_a_frozen_libvirtd_fails_in_time(private, domain):
    """The whole fence agent, exec'd: frozen before it connects (the connect bound)."""
    from test_stonith_helpers import agent, run

    _frozen(private)
    try:
        start = time.monotonic()
        result = run([agent("libvirt"), "--uri", private.uri, "-n", domain, "-o", "off",
                      "--power-timeout", str(POWER_TIMEOUT), "--login-timeout", str(LOGIN)],
                     timeout=60)
        assert result.returncode == 1 and "Success" not in result.stdout
        assert time.monotonic() - start < POWER_TIMEOUT + 3, result.stderr
    finally:
        os.kill(private.proc.pid, signal.SIGCONT)
