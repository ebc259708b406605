"""Two real Xen 4.17 dom0s (qemu TCG): VirtualMachine's live migration both ways, a failed
migration, and fence_hasf_libvirt fencing a domU through xen+ssh://.

One boot of two Xen hosts (lab/xen_migration.py, ~8 min) runs every step; each
test asserts a part of it.  Skipped, with the reason, only when the Xen host's
image cannot be built here.  The mutations named below were tried against
these hosts and made the test fail.
"""

import json

import pytest
from test_xen_common import xen_or_skip

from lab import xen_migration as mig

pytestmark = [pytest.mark.slow, pytest.mark.xen]


@pytest.fixture(scope="module")
def outcome():
    from lab.hasf_lib import hasf_lib

    return mig.run(hasf_lib(), xen_or_skip())


def shown(outcome, *names):
    return json.dumps({n: [outcome.steps[n].returncode, outcome.steps[n].stdout[-500:],
                           outcome.steps[n].stderr[-1500:]] for n in names},
                      indent=1) + "\n" + outcome.table()


def codes(outcome, names):
    return {n: outcome.steps[n].returncode for n in names}, {n: mig.EXPECTED[n] for n in names}


def test_live_migration_there_and_back_leaves_the_domain_on_one_side(outcome):
    """A PVH domU, xennode1 -> xennode2 (libvirt picks the data port), then back with
    migrateport.
    Mutation: vm_migrate.migration_uri giving xend's xenmigr://HOST:PORT for Xen (what it
    gave before) -> the way back fails: libxl takes only tcp:// or HOST:PORT."""
    names = ("probe-1", "probe-2", "start-1", "monitor-1", "migrate-to-2", "migrate-from-2",
             "monitor-2", "xl-gone-1", "xl-on-2", "probe-after-1", "migrate-to-1",
             "migrate-from-1", "monitor-back-1", "xl-gone-2", "xl-on-1", "probe-after-2")
    got, want = codes(outcome, names)
    assert got == want, shown(outcome, *names)
    assert "migrated to xennode2" in outcome.steps["migrate-to-2"].stderr
    assert "xen+ssh://xennode2/system" in outcome.steps["migrate-to-2"].stderr
    back = outcome.steps["migrate-to-1"].stderr
    assert "via tcp://xennode1:%d" % mig.MIGRATEPORT in back, back
    assert "runs here after migration from xennode2" in outcome.steps["migrate-from-1"].stderr


def test_a_failed_migration_leaves_the_domain_running_on_the_source_only(outcome):
    """No memory for the domain on xennode2: migrate_to fails (1), the domain runs on
    xennode1 and not on xennode2, each side's probe says so, and the target's stop
    succeeds with nothing there."""
    names = ("ballast-2", "migrate-fails", "failed-xl-1", "failed-xl-2", "failed-probe-1",
             "failed-probe-2", "failed-stop-2", "failed-monitor-1", "ballast-gone")
    got, want = codes(outcome, names)
    assert got == want, shown(outcome, *names)
    failed = outcome.steps["migrate-fails"].stderr
    assert "live migration of %s to xen+ssh://xennode2/system failed" % mig.DOMAIN in failed, \
        failed
    assert "still runs here" in failed, failed


def test_a_pv_domu_on_debians_xen_cannot_live_migrate_and_stays_on_the_source(outcome):
    """Debian's Xen has no shadow paging, so a PV domU has no log-dirty mode: libxl fails
    the migration.  The agent answers 1 with the domain running on xennode1 only, and its
    exit reason says where libxl wrote the cause.  Mutation: vm_migrate._hint returning ""
    -> the reason does not name libxl's log."""
    names = ("pv-start-1", "pv-migrate-fails", "pv-xl-1", "pv-xl-2", "pv-probe-2", "pv-stop-1")
    got, want = codes(outcome, names)
    assert got == want, shown(outcome, *names)
    failed = outcome.steps["pv-migrate-fails"].stderr
    assert "still runs here" in failed, failed
    assert "ocf-exit-reason:" in failed and "/var/log/libvirt/libxl/libxl-driver.log" in failed


def test_fence_a_xen_domu_through_xen_ssh_verified(outcome):
    """reboot is a verified power cycle: the domain comes back with a new Xen domain ID;
    off leaves it shut off (libvirt's and the agent's status agree); a domain never seen is
    a failure, not "off"."""
    names = ("fence-define", "fence-id-before", "fence-status-on", "fence-reboot",
             "fence-id-after", "fence-off", "fence-state-off", "fence-status-off",
             "fence-on", "fence-state-on", "fence-unknown")
    got, want = codes(outcome, names)
    assert got == want, shown(outcome, *names)
    steps = outcome.steps
    before, after = steps["fence-id-before"].stdout.strip(), steps["fence-id-after"].stdout.strip()
    assert before.isdigit() and after.isdigit() and before != after, shown(outcome, *names)
    assert "Status: ON" in steps["fence-status-on"].stdout
    assert "Success: Rebooted" in steps["fence-reboot"].stdout, shown(outcome, "fence-reboot")
    assert steps["fence-state-off"].stdout.strip() == "shut off", shown(outcome, *names)
    assert "Status: OFF" in steps["fence-status-off"].stdout
    assert steps["fence-state-on"].stdout.strip() == "running"
    assert "not defined" in steps["fence-unknown"].stderr, shown(outcome, "fence-unknown")


def test_every_step_as_expected(outcome):
    names = ("stop-1", "probe-end-1", "probe-end-2")
    got, want = codes(outcome, names)
    assert got == want, shown(outcome, *names)
    assert outcome.codes == mig.EXPECTED, outcome.table()
