"""ocf:hasf:VirtualMachine on a real Xen 4.17 dom0 (qemu TCG), through xen:///system.

One boot of the Xen test host (lab/xen_host.py, ~2.5 min) runs every step of
lab/xen_vm.py; each test asserts a part of it.  Skipped, with the reason,
only when the Xen host's image cannot be built here (no Debian mirror, not
root).  The mutations named below were tried on a real Xen host: they are
the agent's code before the fixes these tests came with.
"""

import json

import pytest
from test_xen_common import xen_or_skip

from lab import xen_vm

pytestmark = [pytest.mark.slow, pytest.mark.xen]


@pytest.fixture(scope="module")
def outcome():
    from lab.hasf_lib import hasf_lib

    return xen_vm.run(hasf_lib(), xen_or_skip())


def shown(outcome, *names):
    return json.dumps({n: [outcome.steps[n].returncode, outcome.steps[n].stderr[-1500:]]
                       for n in names}, indent=1) + "\n" + outcome.table()


def rc(outcome, name):
    return outcome.steps[name].returncode


def test_the_xen_host_runs_xl_and_libvirts_libxl_driver(outcome):
    assert rc(outcome, "xl-info") == 0, shown(outcome, "xl-info")
    assert "xen_version            : 4.17" in outcome.steps["xl-info"].stdout
    assert "Domain-0" in outcome.steps["virsh-list"].stdout, shown(outcome, "virsh-list")


def test_start_monitor_probe_and_a_graceful_paravirt_stop(outcome):
    """Mutation: Hypervisor.wait_state returning the last state (None once the transient
    domain is gone) -> "did not shut down within 40s: destroying it" after 2 s."""
    names = ("probe", "start", "xl-running", "monitor", "probe-running", "stop", "xl-gone",
             "probe-stopped")
    assert {n: rc(outcome, n) for n in names} == {n: xen_vm.EXPECTED[n] for n in names}, \
        shown(outcome, *names)
    assert outcome.steps["xl-running"].stdout.strip().isdigit()   # Xen's own list has it
    stop = outcome.steps["stop"].stderr
    assert "domain %s shut down" % xen_vm.DOMAIN in stop, stop
    assert "destroying" not in stop, stop


def test_libvirtd_down_never_stopped_while_the_domain_runs(outcome):
    """With libvirtd stopped, probe and stop decide from Xen's view (xl), xenfs mounted or
    not; a stop told not to act without libvirtd fails.  Mutation: xen_control_domain
    reading /proc/xen/capabilities only -> the probe without xenfs answers 7 while the
    domain runs."""
    names = ("libvirtd-down", "probe-nolibvirtd", "noxenfs-check", "probe-nolibvirtd-noxenfs",
             "stop-nolibvirtd", "xl-still-running")
    assert {n: rc(outcome, n) for n in names} == {n: xen_vm.EXPECTED[n] for n in names}, \
        shown(outcome, *names)
    for name in ("probe-nolibvirtd", "probe-nolibvirtd-noxenfs", "stop-nolibvirtd"):
        assert "Xen domain %s" % xen_vm.DOMAIN in outcome.steps[name].stderr, shown(outcome,
                                                                                   name)


def test_libvirtd_down_stop_destroys_the_domain_with_xl_verified(outcome):
    """stop_without_libvirtd on a Xen dom0: xl destroy, success once xl no longer lists the
    domain (before: rc 1, and Pacemaker fences the whole node).  Mutation:
    _stop_without_libvirtd acting on qemu evidence only (the code before) -> stop-xl-destroy
    answers 1 and the domain stays."""
    names = ("xl-converted-restart", "libvirtd-down-again", "stop-xl-destroy", "xl-destroyed")
    assert {n: rc(outcome, n) for n in names} == {n: xen_vm.EXPECTED[n] for n in names}, \
        shown(outcome, *names)
    stop = outcome.steps["stop-xl-destroy"].stderr
    assert "destroying Xen domain %s with xl" % xen_vm.XL_DOMAIN in stop, stop
    assert "stopped by xl destroy" in stop, stop


def test_libvirtd_down_and_the_domain_gone_is_proven_stopped(outcome):
    names = ("libvirtd-down-again", "probe-stopped-nolibvirtd",
             "probe-stopped-nolibvirtd-noxenfs", "monitor-back")
    assert {n: rc(outcome, n) for n in names} == {n: xen_vm.EXPECTED[n] for n in names}, \
        shown(outcome, *names)


def test_every_step_as_expected(outcome):
    assert outcome.codes == xen_vm.EXPECTED, outcome.table()


def test_snapshot_stop_saves_and_start_restores_through_libxl(outcome):
    """libvirt's libxl save/restore under the agent's snapshot=; the restored domain then
    shuts down gracefully (test above).  Mutation: start not removing the restored state
    file (the vm_store.unlink after hv.conn.restore) -> snap-file-gone lists it."""
    names = ("snap-stop", "snap-file", "snap-xl-gone", "snap-start", "snap-file-gone",
             "snap-monitor")
    assert {n: rc(outcome, n) for n in names} == {n: xen_vm.EXPECTED[n] for n in names}, \
        shown(outcome, *names)
    assert "saving domain %s" % xen_vm.DOMAIN in outcome.steps["snap-stop"].stderr
    assert outcome.steps["snap-file"].stdout.strip(), shown(outcome, "snap-file")
    assert "restoring domain %s" % xen_vm.DOMAIN in outcome.steps["snap-start"].stderr
    assert not outcome.steps["snap-file-gone"].stdout.strip()   # restored once, then removed


def test_an_xmfile_is_refused_with_a_conversion_that_works(outcome):
    """The refusal's advice, followed on real Xen: libvirt converts the xl config and the
    agent runs the result.  Mutation: the xmfile refusal removed from hasf.clusterlabs ->
    validate-all succeeds (0) and the advice is not shown."""
    names = ("xmfile-refused", "xl-to-xml", "xl-converted-start", "xl-converted-running",
             "xl-converted-stop")
    assert {n: rc(outcome, n) for n in names} == {n: xen_vm.EXPECTED[n] for n in names}, \
        shown(outcome, *names)
    assert "domxml-from-native xen-xl" in outcome.steps["xmfile-refused"].stderr
    converted = outcome.steps["xl-to-xml"].stdout
    assert "<name>%s</name>" % xen_vm.XL_DOMAIN in converted, converted
    assert "type='xen'" in converted or 'type="xen"' in converted, converted
