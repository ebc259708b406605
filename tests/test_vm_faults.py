"""VirtualMachine when libvirtd is down or hung (a private libvirtd, so the shared one stays up).

lab.libvirtd.PrivateLibvirtd is a real, independent libvirtd with its own
socket (qemu+unix:///system?socket=...) whose qemu processes live on this
machine; killing or freezing *it* is what "libvirtd stopped" means here.
"""

import os
import signal
from signal import SIGCONT
import time

import pytest

from test_vm_common import VmRun, agent_path, domains, domstate, workdir  # noqa: F401

from hasf.agents.vm_procs import qemu_processes


@pytest.fixture
def private():
    from lab.libvirtd import PrivateLibvirtd

    with PrivateLibvirtd() as lv:
        yield lv


@pytest.fixture
def running(private, agent_path, domains, workdir):  # noqa: F811
    """A domain started by the agent on the private libvirtd."""
    from test_vm_common import write_config

    domains.uris.append(private.uri)
    name = domains.new("f")
    run = VmRun(agent_path, os.path.join(workdir, "rsc"), config=write_config(workdir, name),
                hypervisor=private.uri, shutdown_timeout_share=10)
    run.name = name
    started = run("start")
    assert started.rc == 0, started
    assert len(qemu_processes(name)) == 1
    yield run
    for pid in qemu_processes(name):
        os.kill(pid, signal.SIGKILL)


def _signal_libvirtd(private, sig):
    os.kill(private.proc.pid, sig)


def test_libvirtd_down(private, running):
    _signal_libvirtd(private, signal.SIGKILL)
    private.proc.wait(10)
    monitor = running("monitor", timeout=6000)
    assert monitor.rc == 1, monitor  # an error, never 7
    assert monitor.seconds < 6
    assert "cannot connect" in monitor.reason
    probe = running.probe(timeout=6000)
    assert probe.rc == 1, probe  # qemu still runs: a probe cannot say "stopped"
    assert "qemu process" in probe.reason
    refused = running("stop", timeout=6000, stop_without_libvirtd="false")
    assert refused.rc == 1, refused  # does not claim success while qemu runs
    assert len(qemu_processes(running.name)) == 1
    stopped = running("stop", timeout=10000)
    assert stopped.rc == 0, stopped  # ended the qemu process itself, verified gone
    assert qemu_processes(running.name) == []
    probe = running.probe(timeout=6000)
    assert probe.rc == 7, probe  # libvirtd down, but provably nothing runs the domain


def test_libvirtd_hung(private, running):
    from lab.process import wait_until

    _signal_libvirtd(private, signal.SIGSTOP)
    try:
        start = time.monotonic()
        monitor = running("monitor", timeout=4000)
        assert monitor.rc == 1, monitor
        assert time.monotonic() - start < 4
        assert "did not return" in monitor.reason
        probe = running.probe(timeout=4000)
        assert probe.rc == 1, probe
        # stop: libvirtd does not answer within its share; qemu is ended directly, in time
        stopped = running("stop", timeout=12000)
        assert stopped.rc == 0, stopped
        assert stopped.seconds < 12
        assert qemu_processes(running.name) == []
    finally:
        _signal_libvirtd(private, SIGCONT)
    # libvirtd, once it answers again, agrees: the domain is gone
    wait_until(lambda: running("monitor").rc == 7, 30, 0.5, "libvirtd to notice qemu is gone")
    assert domstate(private.uri, running.name) is None


def test_recurring_monitor_rides_out_a_libvirtd_restart(private, running):
    """libvirtd down for a moment (a package upgrade): the monitor retries, then answers 0."""
    import threading

    from lab.libvirtd import virsh
    from lab.process import wait_until

    _signal_libvirtd(private, signal.SIGKILL)
    private.proc.wait(10)
    os.unlink(private.socket)  # as after a clean stop: nothing listens
    result = []
    monitor = threading.Thread(target=lambda: result.append(running("monitor", timeout=30000)))
    monitor.start()
    time.sleep(2)
    private.proc = private.host.popen(["libvirtd"], os.path.join(private.workdir, "again.out"))
    wait_until(lambda: os.path.exists(private.socket)
               and virsh(private.uri, "uri", timeout=5).returncode == 0, 30, 0.2,
               "private libvirtd back")
    monitor.join(40)
    assert result and result[0].rc == 0, result
    assert result[0].seconds >= 2  # it did wait for libvirtd, and did not give up
    assert len(qemu_processes(running.name)) == 1



def test_stop_with_an_unparsable_hypervisor_uses_the_uri_it_started_with(private, running):
    """A hypervisor value that does not parse must not send stop to libvirt's default URI.

    The domain runs on a private libvirtd that libvirt's default URI (qemu:///system)
    does not know.  With a broken hypervisor value a probe still sees it running and
    stop still stops it, through the URI remembered at start.
    """
    broken = "qemu:///system;`id`"
    probe = running.probe(hypervisor=broken)
    assert probe.rc == 0, probe
    stopped = running("stop", hypervisor=broken)
    assert stopped.rc == 0, stopped
    assert qemu_processes(running.name) == []
    assert running("monitor").rc == 7
