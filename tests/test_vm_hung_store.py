"""VirtualMachine with its config on a store that stops answering (issue 9).

The config store is a bindfs FUSE mount whose daemon is SIGSTOPped
(support.hungfs.HungFuse): every stat/open/read on it blocks in the kernel,
as on hung NFS, a dead iSCSI disk, or OCFS2 waiting for DLM recovery after
a node death -- exactly at failover.  The domains are real diskless qemu
domains on the host's qemu:///system libvirtd; nothing of the domain itself
lives on the store, only its XML.

Every action runs with a 3 s operation timeout and must answer inside it,
with the code that tells the truth.
"""

import os

import pytest

from test_vm_common import (SYSTEM_URI, VmRun, agent_path, domains, domstate,  # noqa: F401
                            system_libvirtd, workdir)

TIMEOUT_MS = 3000
#: the harness kills an agent still running after this: a hang fails the test, not the run
LIMIT = 10


@pytest.fixture
def store(workdir):  # noqa: F811
    from support.hungfs import HungFuse

    with HungFuse(workdir, "configstore") as fs:
        yield fs


@pytest.fixture
def on_store(agent_path, system_libvirtd, domains, workdir, store):  # noqa: F811
    """A domain whose config is on the store, started by the agent while the store answers."""
    from lab.libvirtd import diskless_domain_xml

    name = domains.new("hs")
    config = store.path(name + ".xml")
    with open(config, "w") as handle:
        handle.write(diskless_domain_xml(name))
    run = VmRun(agent_path, os.path.join(workdir, "rsc"), config=config,
                hypervisor=SYSTEM_URI, shutdown_timeout_share=10)
    run.name, run.config = name, config
    started = run("start")
    assert started.rc == 0, started
    return run


def _timed(run, action, **kw):
    result = run(action, timeout=TIMEOUT_MS, limit=LIMIT, **kw) if action != "probe" else \
        run.probe(timeout=TIMEOUT_MS, limit=LIMIT, **kw)
    print("%s with the config store hung: rc %d in %.2fs" % (action, result.rc, result.seconds))
    assert result.seconds < TIMEOUT_MS / 1000.0, result
    return result


def test_recorded_domain_monitor_probe_and_stop_answer_in_time(on_store, store):
    """Recorded at start: monitor 0, probe 0, stop 0 with the domain really gone, each < 3 s.

    Mutation: VirtualMachine.identity() reading the config before the record (the old
    order, config first and in-process) -- the monitor blocks on the frozen store and is
    still running when the harness kills it (subprocess.TimeoutExpired at 10 s).
    """
    store.freeze()
    assert _timed(on_store, "monitor").rc == 0
    assert _timed(on_store, "probe").rc == 0
    stopped = _timed(on_store, "stop")
    assert stopped.rc == 0, stopped
    assert domstate(SYSTEM_URI, on_store.name) is None  # really gone, not just "answered 0"
    assert _timed(on_store, "monitor").rc == 7  # the record says which domain: provably off


def test_unrecorded_probe_with_a_hung_config_is_an_error_never_7(on_store, store, workdir):  # noqa: F811
    """No record on this node and the config cannot be read: "cannot tell" (1), in time.

    A node that never ran the domain has no record, so its probe must read the config;
    when the store hangs, the read is abandoned at the deadline and the answer is an
    error.  Mutations: vm_store._bounded calling func(*args) in-process (the probe hangs
    past 10 s); vm_store.read_config mapping a timeout to ConfigUnavailable (the probe
    answers 7 while the domain runs -- it does run, on_store started it).
    """
    fresh = VmRun(on_store.agent, os.path.join(workdir, "rsc-other"), config=on_store.config,
                  hypervisor=SYSTEM_URI, shutdown_timeout_share=10)
    store.freeze()
    probe = _timed(fresh, "probe")
    assert probe.rc == 1, probe
    assert "did not finish" in probe.reason, probe
    stop = _timed(fresh, "stop")
    assert stop.rc == 1, stop  # not "nothing to stop": who the domain is cannot be read
    start = _timed(fresh, "start")
    assert start.rc == 1, start
    assert domstate(SYSTEM_URI, on_store.name) == "running"  # nobody touched it
    store.thaw()
    assert on_store("stop").rc == 0


def test_validation_of_snapshot_and_scripts_on_a_hung_store(on_store, store):
    """validate-all checks the snapshot directory and monitor scripts in a bounded child.

    Mutation: vm_store.check_paths calling _check_paths in-process (os.stat on the frozen
    store) -- validate-all hangs past 10 s.
    """
    snapdir = store.path("snap")
    os.mkdir(snapdir)
    store.freeze()
    # by name: the config read would time out first and hide the snapshot check
    by_name = {"config": None, "name": on_store.name, "snapshot": snapdir}
    result = _timed(on_store, "validate-all", **by_name)
    assert result.rc == 1, result  # cannot tell, not "not installed" and not success
    assert snapdir in result.reason or "snapshot" in result.reason, result
    store.thaw()
    assert on_store("validate-all", snapshot=snapdir).rc == 0
    assert on_store("stop").rc == 0
