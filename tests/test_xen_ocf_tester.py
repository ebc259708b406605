"""ClusterLabs' ocf-tester passes VirtualMachine on a real Xen dom0 (xen:///system).

A boot of its own (lab/xen_vm.py ``ocf_tester_steps``): ocf-tester starts and
stops the domU twice, ~2 min under emulation on top of the ~1 min boot.
"""

import pytest
from test_xen_common import xen_or_skip

from lab import xen_vm

pytestmark = [pytest.mark.slow, pytest.mark.xen]


@pytest.fixture(scope="module")
def outcome():
    from lab.hasf_lib import hasf_lib

    return xen_vm.run(hasf_lib(), xen_or_skip(), xen_vm.ocf_tester_steps)


def test_ocf_tester_passes_on_xen(outcome):
    """Mutation: a probe of the stopped domain answering 0 -> "Monitoring a stopped resource
    should return 7" fails."""
    tester = outcome.steps["ocf-tester"]
    assert tester.returncode == 0, tester.stdout[-3000:] + tester.stderr[-3000:]
    assert "passed all tests" in tester.stdout
