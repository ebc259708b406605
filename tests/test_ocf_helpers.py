"""Helpers every agent needs: node name, state files, locks."""

import multiprocessing
import os
import stat
import time

import pytest

from hasf.deadline import Deadline
from hasf.ocf.environment import Invocation
from hasf.ocf.errors import GenericError
from hasf.ocf.node import local_node_name
from hasf.ocf.state import Lock, StateFile, safe_name


def test_node_name_from_pacemaker_is_free():
    inv = Invocation("monitor", {"OCF_RESKEY_CRM_meta_on_node": "node7"})
    assert local_node_name(inv) == "node7"


def test_node_name_falls_back_to_uname_without_a_cluster():
    # crm_node -n fails (no cluster stack running in this process' view): uname -n
    name = local_node_name(Invocation("monitor", {}), Deadline(10))
    assert name == os.uname().nodename


def test_state_file_atomic_private_and_idempotent(rsctmp):
    state = StateFile("VirtualMachine-vm1", {"HA_RSCTMP": rsctmp})
    assert state.read() is None and not state.exists()
    state.write("domain=vm1\n")
    assert state.read() == "domain=vm1\n"
    assert stat.S_IMODE(os.stat(state.path).st_mode) == 0o600
    assert os.listdir(rsctmp) == ["VirtualMachine-vm1"]  # no temp file left behind
    state.remove()
    state.remove()
    assert state.read() is None


def test_state_file_names_cannot_escape_rsctmp(rsctmp):
    assert "/" not in safe_name("../../etc", "passwd")
    state = StateFile(safe_name("X", "../../etc/passwd"), {"HA_RSCTMP": rsctmp})
    assert os.path.dirname(state.path) == rsctmp


def _hold(path_env, ready, release):
    with Lock("tgt", Deadline(5), path_env):
        ready.set()
        release.wait(10)


def test_lock_excludes_other_processes_and_times_out(rsctmp):
    env = {"HA_RSCTMP": rsctmp}
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold, args=(env, ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        start = time.monotonic()
        with pytest.raises(GenericError):
            with Lock("tgt", Deadline(0.5), env, interval=0.05):
                pass
        assert 0.4 < time.monotonic() - start < 3
    finally:
        release.set()
        holder.join(10)
    with Lock("tgt", Deadline(2), env):  # free again once the holder is gone
        pass
