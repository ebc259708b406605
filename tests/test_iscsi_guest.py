"""The scenario's storage path end to end, with a real initiator kernel in a guest.

hasf's SAN agents on the host's tgtd; in a Debian guest kernel, hasf's
`iscsi` agent logs in and hasf's Filesystem mounts the LUN's OCFS2, writes,
and everything stops in order (support.storage_path has the steps).
"""

import json
import os
import shutil
import tempfile

import pytest

from support import storage_path
from testagents import hasf_site, install_test_agent


@pytest.fixture(scope="module")
def image():
    from support.guest import GuestImageUnavailable, guest_image

    try:
        return guest_image()
    except GuestImageUnavailable as exc:
        pytest.skip("no guest image: %s" % exc)


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix="hasf-iscsi-guest-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_guest_logs_in_to_the_hasf_san_and_mounts_ocfs2(image, workdir):
    agents = os.path.join(workdir, "host-agents")
    host_agents = {name: install_test_agent(agents, name, module) for name, module in (
        ("iSCSITarget", "hasf.agents.iscsi_target"),
        ("iSCSILogicalUnit", "hasf.agents.iscsi_logical_unit"))}
    outcome = storage_path.run(image, workdir, host_agents, hasf_site()[0])
    shown = json.dumps({n: [r.returncode, r.stderr[-400:]] for n, r in outcome.steps.items()},
                       indent=1)
    assert outcome.codes == storage_path.EXPECTED, shown
    assert "set discovery_type=static" in outcome.steps["discovery"].stderr, shown
    assert storage_path.IQN in outcome.steps["sessions"].stdout
    assert "mounted on /mnt/store" in outcome.steps["busy-stop"].stderr, shown
    # what the guest wrote through iSCSI is on the host's backing store
    assert "written-by-node1" in outcome.listing, outcome.listing
    assert not outcome.sessions_left  # the guest logged out
    assert outcome.host_stops == (0, 0)
    assert outcome.ok
