"""The scenario's storage path end to end, with a real initiator kernel in a guest.

Host: tgtd with the SAN made by hasf's iSCSITarget + iSCSILogicalUnit, the LUN
an OCFS2 filesystem (mkfs.ocfs2 -M local: no cluster stack needed to mount).
Guest (Debian kernel under qemu TCG, support.guest): open-iscsi's iscsid,
and hasf's own `iscsi` and `Filesystem` agents, run as Pacemaker would run
them: probe, start, monitor, the OCFS2 mount, stop in order.  This host
cannot do any of that itself (no iscsi_tcp, no ocfs2 modules).
"""

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from support.ocfrun import AgentRun
from support.tgtd import Tgtd
from testagents import hasf_site, install_test_agent

IQN = "iqn.2026-12.org.hasf.test:guest-san"
GUEST_LAUNCHER = """#!/usr/bin/python3 -IS
import sys
sys.path[:0] = [%r]
from %s import main
sys.exit(main())
"""


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


def host_agent(directory, name, module):
    return install_test_agent(directory, name, module)


def ocf(agent, action, interval=0, **params):
    """argv that runs a hasf agent in the guest with an execd-like environment (no shell)."""
    env = {"OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": os.path.basename(agent),
           "HA_RSCTMP": "/run/resource-agents", "OCF_RESKEY_CRM_meta_timeout": "60000",
           "OCF_RESKEY_CRM_meta_interval": str(interval)}
    env.update({"OCF_RESKEY_" + k: str(v) for k, v in params.items()})
    return ["env"] + ["%s=%s" % item for item in sorted(env.items())] + [agent, action]


def test_guest_logs_in_to_the_hasf_san_and_mounts_ocfs2(image, workdir):
    from support.guest import Command, Guest

    backing = os.path.join(workdir, "lun1.img")
    with open(backing, "wb") as handle:
        handle.truncate(256 << 20)
    subprocess.run(["mkfs.ocfs2", "-q", "-F", "-M", "local", "-N", "2", "-L", "hasfstore",
                    backing], check=True, timeout=120, capture_output=True)
    agents = os.path.join(workdir, "host-agents")
    with Tgtd() as tgtd, Guest("node1", image=image) as guest:
        rsc = os.path.join(workdir, "rsc")
        target = AgentRun(host_agent(agents, "iSCSITarget", "hasf.agents.iscsi_target"), rsc,
                          "san-target", "iSCSITarget", iqn=IQN,
                          tgt_control_port=tgtd.control_port)
        lun = AgentRun(host_agent(agents, "iSCSILogicalUnit", "hasf.agents.iscsi_logical_unit"),
                       rsc, "san-lun1", "iSCSILogicalUnit", target_iqn=IQN, lun=1,
                       path=backing, tgt_control_port=tgtd.control_port)
        assert target("start").rc == 0 and lun("start").rc == 0

        # hasf inside the guest: this checkout's regular install, on the 9p share
        lib = guest.copy_in(hasf_site()[0], "hasf-lib")
        for name, module in (("iscsi", "hasf.agents.iscsi_initiator"),
                             ("Filesystem", "hasf.agents.filesystem")):
            path = guest.host_path(name)
            with open(path, "w") as handle:
                handle.write(GUEST_LAUNCHER % (lib, module))
            os.chmod(path, 0o755)
        iscsi, fs = guest.guest_path("iscsi"), guest.guest_path("Filesystem")
        portal = "10.0.2.2:%d" % tgtd.portal_port  # the host's 127.0.0.1, seen from the guest
        init = {"portal": portal, "target": IQN, "udev": "false"}
        store = {"device": "/dev/sda", "directory": "/mnt/store", "fstype": "ocfs2"}
        steps = [
            ("iscsid", Command(("iscsid",), timeout=30)),
            ("probe", ocf(iscsi, "monitor", **init)),
            ("discovery", ocf(iscsi, "start", **init)),       # tgtd announces 127.0.0.1
            ("start", ocf(iscsi, "start", discovery_type="static", **init)),
            ("monitor", ocf(iscsi, "monitor", 120000, **init)),
            ("sessions", ["iscsiadm", "-m", "session"]),
            ("fs-probe", ocf(fs, "monitor", **store)),
            ("fs-start", ocf(fs, "start", **store)),
            ("fs-monitor20", ["env", "OCF_CHECK_LEVEL=20"] + ocf(fs, "monitor", 20000, **store)[1:]),
            ("write", ["cp", "/etc/hostname", "/mnt/store/written-by-node1"]),
            ("busy-stop", ocf(iscsi, "stop", **init)),       # refused: OCFS2 still mounted
            ("fs-stop", ocf(fs, "stop", **store)),
            ("stop", ocf(iscsi, "stop", **init)),
            ("after", ocf(iscsi, "monitor", 120000, **init)),
        ]
        results = guest.run_batch([argv for _, argv in steps],
                                  modules=["iscsi_tcp", "sd_mod", "ocfs2"], timeout=600)
        got = {name: r for (name, _), r in zip(steps, results)}
        shown = json.dumps({n: [r.returncode, r.stderr[-400:]] for n, r in got.items()},
                           indent=1)
        expect = {"iscsid": 0, "probe": 7, "discovery": 1, "start": 0, "monitor": 0,
                  "sessions": 0, "fs-probe": 7, "fs-start": 0, "fs-monitor20": 0, "write": 0,
                  "busy-stop": 1, "fs-stop": 0, "stop": 0, "after": 7}
        assert {n: got[n].returncode for n in expect} == expect, shown
        assert "set discovery_type=static" in got["discovery"].stderr, shown
        assert IQN in got["sessions"].stdout
        assert "mounted on /mnt/store" in got["busy-stop"].stderr, shown

        # what the guest wrote through iSCSI is on the host's backing store
        listing = subprocess.run(["debugfs.ocfs2", "-R", "ls -l /", backing],
                                 capture_output=True, text=True, timeout=60)
        assert "written-by-node1" in listing.stdout, listing
        assert "I_T nexus: " not in tgtd.show()  # the guest logged out
        assert lun("stop").rc == 0 and target("stop").rc == 0
