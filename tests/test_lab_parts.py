"""The crash test's judges, on the host: the invariants, the SAN volumes' fsck, the specs.

The lab's cluster run (tests/test_lab_cluster.py) can only show that a good
cycle passes.  These show that the parts which decide "violation" and
"clean" can say no: the invariant checks fed with the samples a split brain
would produce, and fsck of a volume whose superblock is gone.  Each test's
docstring names the mutation that makes it fail.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from lab import invariants as inv
from lab.cluster import LabSpec, REPO
from lab.san import MIB, SanDisk


class FakeBmc:
    def __init__(self, alive=True):
        self.alive = alive
        self.pid = 4242

    def qemu_pid(self):
        return self.pid if self.alive else None


class FakeWitness:
    """A node's sampler as the Invariants see it: the newest sample and its age."""

    def __init__(self):
        self.latest = None

    def report(self, vm=(), state=None, ocfs2=(), boot="b1"):
        self.latest = inv.Sample({"boot": boot, "vm": [{"pid": p, "incoming": False}
                                                         for p in vm],
                                  "vm_state": state, "ocfs2": list(ocfs2), "o2cb": {},
                                  "iscsi": []})
        self.latest["at"] = time.monotonic()

    def fresh(self, now):
        return inv.Witness.fresh(self, now)


class FakeCluster:
    names = ["node1", "node2"]

    def __init__(self):
        self.bmcs = {n: FakeBmc() for n in self.names}
        self.nodes = {}


def judge():
    cluster = FakeCluster()
    judge = inv.Invariants.__new__(inv.Invariants)
    judge.cluster = cluster
    judge.witnesses = {n: FakeWitness() for n in cluster.names}
    judge.violations, judge.fenced, judge.say = [], {}, lambda message: None
    judge._pids = {}
    judge._both_seen, judge._t0 = None, time.monotonic()
    judge._unknown_since, judge.blind = {}, []
    return judge


def two_ticks(judge, node1, node2):
    """Two successive samples of each node, reported as given, with a tick after each."""
    for _ in range(2):
        judge.witnesses["node1"].report(**node1)
        judge.witnesses["node2"].report(**node2)
        time.sleep(0.01)
        judge.tick()


def test_vm1_running_on_both_nodes_is_a_violation():
    """Mutation: count a node as running vm1 only when Pacemaker says so (or drop the
    both-running check) -- no violation is recorded."""
    j = judge()
    two_ticks(j, {"vm": [11], "state": "running"}, {"vm": [22], "state": "running"})
    assert len(j.violations) == 1 and "node1 and node2" in j.violations[0]


def test_unknown_libvirt_state_counts_as_running():
    """A qemu whose libvirt status cannot be read is running (fail closed).
    Mutation: Sample.vm_running requires state == 'running'."""
    j = judge()
    two_ticks(j, {"vm": [11], "state": "unknown"}, {"vm": [22], "state": None})
    assert j.violations


def test_live_migration_target_paused_is_not_a_violation():
    """During a live migration the target's qemu exists but is paused.  Mutation:
    Sample.vm_running ignores vm_state -- a violation on every migration."""
    j = judge()
    two_ticks(j, {"vm": [11], "state": "running"}, {"vm": [22], "state": "paused"})
    assert j.violations == []


def test_one_sample_of_both_is_not_yet_a_violation():
    """A switch-over shorter than one sample is not a split brain.  Mutation: report on
    the first tick that sees both."""
    j = judge()
    j.witnesses["node1"].report(vm=[11], state="running")
    j.witnesses["node2"].report(vm=[22], state="running")
    j.tick()
    j.tick()   # the same samples again: no new evidence
    assert j.violations == []


def test_a_node_without_power_runs_nothing():
    """A node whose qemu is gone cannot run vm1, whatever its last sample said.
    Mutation: Invariants.view ignores the host's power view."""
    j = judge()
    j.cluster.bmcs["node1"].alive = False
    two_ticks(j, {"vm": [11], "state": "running"}, {"vm": [22], "state": "running"})
    assert j.violations == []


def test_ocfs2_mounted_while_fenced_is_a_violation():
    """Mutation: skip the fenced-node check -- nothing is recorded."""
    j = judge()
    j.fenced["node1"] = time.monotonic()
    j.witnesses["node1"].report(ocfs2=["/var/lib/xen/images"], boot="b2")
    j.witnesses["node2"].report(ocfs2=["/var/lib/xen/images"])
    j.tick()
    assert len(j.violations) == 1 and "node1 mounts OCFS2" in j.violations[0]
    j.fenced["node1"] = None
    j.witnesses["node1"].report(ocfs2=["/etc/xen/vm"], boot="b2")
    j.tick()
    assert len(j.violations) == 1


def test_samples_from_before_the_fence_or_the_power_cycle_say_nothing_now():
    """Measured in a 20-cycle run: node1's last sample before its power was cut (stores
    still mounted) was still 'fresh' after the BMC powered it on again, and counted as
    OCFS2 mounted while fenced.  Mutation: drop the power-on cut in view()."""
    j = judge()
    j.witnesses["node1"].report(vm=[11], state="running", ocfs2=["/etc/xen/vm"])
    j.witnesses["node2"].report()
    j.tick()                                     # node1 as it was before the kill
    j.fenced["node1"] = time.monotonic()         # its power seen off ...
    j.cluster.bmcs["node1"].pid = 4343           # ... and on again: another qemu
    time.sleep(0.01)
    j.witnesses["node2"].report(vm=[22], state="running")
    j.tick()
    j.witnesses["node2"].report(vm=[22], state="running")
    j.tick()
    assert j.view("node1", time.monotonic()) == ("unknown", None)
    assert j.violations == []


def test_a_sample_from_before_a_software_fence_is_not_a_violation():
    """fence_hasf_demo reboots the node inside the same qemu (no power-on to cut at): the
    fence counts from the node's last sample in its old boot.  Mutation: drop the
    'sample taken after the fence' condition in tick()."""
    j = judge()
    j.witnesses["node1"].report(ocfs2=["/etc/xen/vm"])
    j.witnesses["node2"].report()
    time.sleep(0.01)
    j.fenced["node1"] = time.monotonic()
    j.tick()
    assert j.violations == []


def test_stale_sampler_is_unknown_not_stopped():
    """A sampler that stopped answering gives no answer at all.  Mutation: fresh()
    returns the last sample whatever its age."""
    j = judge()
    j.witnesses["node1"].report(vm=[11], state="running")
    j.witnesses["node1"].latest["at"] -= inv.STALE_S + 1
    assert j.view("node1", time.monotonic()) == ("unknown", None)


@pytest.mark.slow
def test_a_powered_node_unsampled_too_long_is_reported(monkeypatch):
    """Unknown is no evidence either way, so a long unknown stretch means the invariants
    were not checked: reported, and a short one (a boot) is not.  Mutation: drop the
    _track_unknown call in Invariants.tick -- nothing is reported."""
    monkeypatch.setattr(inv, "BLIND_LIMIT_S", 0.3)
    j = judge()
    j.witnesses["node2"].report()
    j.tick()                                  # node1 powered, never sampled: unknown
    time.sleep(0.1)
    j.witnesses["node1"].report()
    j.witnesses["node2"].report()
    j.tick()                                  # back after 0.1 s: a boot, not blind
    assert j.blind == []
    j.witnesses["node1"].latest["at"] -= 10   # silent from now on
    j.tick()
    time.sleep(0.4)
    j.witnesses["node2"].report()
    j.tick()
    j.cluster.bmcs["node1"].alive = False    # then powered off: the stretch ends
    j.tick()
    assert len(j.blind) == 1 and j.blind[0].startswith("node1 had power"), j.blind
    assert j.violations == []


RUN_THAT_WAITS = """
import sys, time
from lab import crashtest
def run(*args, **kwargs):
    open(sys.argv[1] + ".started", "w").close()
    try:
        time.sleep(60)
    finally:
        open(sys.argv[1] + ".stopped", "w").close()   # what Cluster.__exit__ would do
crashtest.run = run
sys.exit(crashtest.main(["--cycles", "1"]))
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_crash_test_stops_its_lab_on_sigint_and_sigterm(tmp_path, sig):
    """Started in the background (SIGINT ignored, as a non-interactive shell hands it
    down) or sent SIGTERM, `make crash-test` still unwinds through the cluster's clean-up.
    Mutation: drop the interruptible() call in crashtest.main -- SIGINT is ignored (the
    run goes on) and SIGTERM kills it without running the clean-up."""
    mark = str(tmp_path / "run")
    proc = subprocess.Popen([sys.executable, "-c", RUN_THAT_WAITS, mark], cwd=REPO,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not os.path.exists(mark + ".started") and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "interrupted" in err, (proc.returncode, err)
    assert os.path.exists(mark + ".stopped")


def test_san_disk_volumes_are_clean_and_a_broken_one_is_not(tmp_path):
    """Real mkfs.ocfs2/sfdisk/fsck.ocfs2 on the host.  Mutation: check() reports every
    volume clean -- the zeroed superblock passes."""
    disk = SanDisk(str(tmp_path / "san.img"), volumes=(("one", 64), ("two", 64))).make()
    assert {label: ok for label, (ok, _) in disk.check().items()} == {"one": True, "two": True}
    _label, offset, _size = disk.partitions()[1]
    with open(disk.path, "r+b") as handle:
        handle.seek(offset)
        handle.write(b"\0" * MIB)
    results = disk.check()
    assert results["one"][0] is True
    assert results["two"][0] is False, results["two"][1]


@pytest.mark.parametrize("name, kind, power", [("hasf-lab.toml", "power", "bmc"),
                                               ("hasf-lab-demo.toml", "reboot", "bmc"),
                                               ("hasf-lab-libvirt.toml", "power", "domain"),
                                               ("clusterlabs-lab.toml", "power", "bmc")])
def test_lab_specs_read(name, kind, power):
    """Every lab spec names two nodes, node2 as the SAN, both stores and vm1."""
    spec = LabSpec(os.path.join(REPO, "lab", name))
    assert spec.nodes == ["node1", "node2"] and spec.san_node == "node2"
    assert set(spec.stores) == {"imagestore", "configstore"} and "vm1" in spec.vms
    assert spec.fence_kind == kind and spec.power == power
    assert spec.sshd_port == (16222 if power == "domain" else None)
    assert set(spec.bmc_ports) == {"node1", "node2"}
