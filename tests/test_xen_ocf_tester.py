"""ClusterLabs' ocf-tester passes VirtualMachine on a real Xen dom0 (xen:///system).

A boot of its own (lab/xen_vm.py ``ocf_tester_steps``): ocf-tester starts and
stops the domU twice, ~2 min under emulation on top of the ~1 min boot, so it
runs only when asked (HASF_XEN_LONG=1): CI keeps its Xen share to the one
boot of tests/test_xen_vm.py.
"""

import os

import pytest

from lab import xen_vm

pytestmark = [pytest.mark.slow, pytest.mark.xen]


@pytest.fixture(scope="module")
def outcome():
    from lab.debian import GuestImageUnavailable
    from lab.hasf_lib import hasf_lib
    from lab.xen_image import xen_image

    if os.environ.get("HASF_XEN_LONG") != "1":
        pytest.skip("ocf-tester on Xen takes ~3 min of emulation: set HASF_XEN_LONG=1")
    try:
        xen = xen_image()
    except GuestImageUnavailable as exc:
        pytest.skip("no Xen host image: %s" % exc)
    return xen_vm.run(hasf_lib(), xen, xen_vm.ocf_tester_steps)


def test_ocf_tester_passes_on_xen(outcome):
    """Mutation: a probe of the stopped domain answering 0 -> "Monitoring a stopped resource
    should return 7" fails."""
    tester = outcome.steps["ocf-tester"]
    assert tester.returncode == 0, tester.stdout[-3000:] + tester.stderr[-3000:]
    assert "passed all tests" in tester.stdout
