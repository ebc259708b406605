"""The scenario's storage path, end to end: SAN on the host, initiator + OCFS2 in a guest.

Host: tgtd with the SAN made by hasf's iSCSITarget + iSCSILogicalUnit, the LUN
an OCFS2 filesystem (mkfs.ocfs2 -M local: no cluster stack needed to mount).
Guest (a Debian kernel, guest.py): open-iscsi's iscsid and hasf's own
`iscsi` and `Filesystem` agents run as Pacemaker would run them -- probe,
start, monitor, the OCFS2 mount, a refused logout while mounted, stop in
order.  Used by tests/test_iscsi_guest.py (which asserts every step) and by
`make demo` (which shows them).  The host cannot do any of this itself: no
iscsi_tcp, no ocfs2 modules.
"""

import os
import subprocess

from lab.guest import Command, Guest
from lab.ocfrun import AgentRun
from lab.tgtd import Tgtd

IQN = "iqn.2026-12.org.hasf.test:guest-san"
GUEST_LAUNCHER = """#!/usr/bin/python3 -IS
import sys
sys.path[:0] = [%r]
from %s import main
sys.exit(main())
"""
#: step -> the exit status it must have
EXPECTED = {"iscsid": 0, "probe": 7, "discovery": 1, "start": 0, "monitor": 0, "reload": 0,
            "sessions": 0,
            "fs-probe": 7, "fs-start": 0, "fs-monitor20": 0, "write": 0, "busy-stop": 1,
            "fs-stop": 0, "dm-create": 0, "dm-mount": 0, "dm-busy-stop": 1, "dm-umount": 0,
            "stop": 0, "dm-remove": 0, "after": 7}
#: a device-mapper map over the LUN, as multipath makes one (no udev in the guest)
DM_TABLE = "0 %d linear /dev/sda 0" % ((256 << 20) // 512)


def ocf(agent, action, interval=0, check_level=None, **params):
    """argv that runs a hasf agent in the guest with an execd-like environment (no shell)."""
    env = {"OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": os.path.basename(agent),
           "HA_RSCTMP": "/run/resource-agents", "OCF_RESKEY_CRM_meta_timeout": "60000",
           "OCF_RESKEY_CRM_meta_interval": str(interval)}
    if check_level is not None:
        env["OCF_CHECK_LEVEL"] = str(check_level)
    env.update({"OCF_RESKEY_" + k: str(v) for k, v in params.items()})
    return ["env"] + ["%s=%s" % item for item in sorted(env.items())] + [agent, action]


class Outcome:
    """What happened: each guest step's result, and what the host saw afterwards."""

    def __init__(self, steps, listing, sessions_left, host_stops):
        self.steps = steps                  # {name: GuestResult}
        self.listing = listing              # debugfs.ocfs2 'ls -l /' of the LUN
        self.sessions_left = sessions_left  # tgtd still shows an initiator session
        self.host_stops = host_stops        # (LU stop rc, target stop rc)

    @property
    def codes(self):
        return {name: result.returncode for name, result in self.steps.items()}

    @property
    def ok(self):
        return (self.codes == EXPECTED and "written-by-node1" in self.listing
                and not self.sessions_left and self.host_stops == (0, 0)
                and "set discovery_type=static" in self.steps["discovery"].stderr
                and "reloaded: try_recovery=True" in self.steps["reload"].stderr
                and "mounted on /mnt/store" in self.steps["busy-stop"].stderr
                and "held by dm-" in self.steps["dm-busy-stop"].stderr
                and "nobody has open" in self.steps["stop"].stderr)

    def table(self):
        return "\n".join("%-13s rc=%-3s (want %d)" % (name, result.returncode, EXPECTED[name])
                         for name, result in self.steps.items())


def export_san(host_agents, rsc, tgtd, iqn, backing, prefix):
    """hasf's iSCSITarget and iSCSILogicalUnit (LUN 1 on backing) started on the host's
    tgtd, as the SAN node would; (target, lun) AgentRuns for the steps that stop them."""
    target = AgentRun(host_agents["iSCSITarget"], rsc, prefix + "-target", "iSCSITarget",
                      iqn=iqn, tgt_control_port=tgtd.control_port)
    lun = AgentRun(host_agents["iSCSILogicalUnit"], rsc, prefix + "-lun1", "iSCSILogicalUnit",
                   target_iqn=iqn, lun=1, path=backing, tgt_control_port=tgtd.control_port)
    for run_ in (target, lun):
        started = run_("start")
        if started.rc != 0:
            raise RuntimeError("host %s start failed: %s" % (run_.resource_type, started))
    return target, lun


def run(image, workdir, host_agents, hasf_lib):
    """The whole path. host_agents: {"iSCSITarget": path, "iSCSILogicalUnit": path};
    hasf_lib: a directory the guest imports hasf from (copied into the guest)."""
    backing = os.path.join(workdir, "lun1.img")
    with open(backing, "wb") as handle:
        handle.truncate(256 << 20)
    subprocess.run(["mkfs.ocfs2", "-q", "-F", "-M", "local", "-N", "2", "-L", "hasfstore",
                    backing], check=True, timeout=120, capture_output=True)
    with Tgtd() as tgtd, Guest("node1", image=image) as guest:
        target, lun = export_san(host_agents, os.path.join(workdir, "rsc"), tgtd, IQN,
                                 backing, "san")
        steps = _guest_steps(guest, hasf_lib, "10.0.2.2:%d" % tgtd.portal_port)
        results = guest.run_batch([argv for _, argv in steps],
                                  modules=["iscsi_tcp", "sd_mod", "ocfs2", "dm_mod"], timeout=600)
        listing = subprocess.run(["debugfs.ocfs2", "-R", "ls -l /", backing],
                                 capture_output=True, text=True, timeout=60).stdout
        sessions_left = "I_T nexus: " in tgtd.show()
        host_stops = (lun("stop").rc, target("stop").rc)
    return Outcome({name: r for (name, _), r in zip(steps, results)}, listing, sessions_left,
                   host_stops)


def dmsetup(*args):
    """dmsetup without udev (the guest runs none): it makes the /dev/mapper node itself."""
    return ["env", "DM_DISABLE_UDEV=1", "dmsetup"] + list(args)


def _guest_steps(guest, hasf_lib, portal):
    lib = guest.copy_in(hasf_lib, "hasf-lib")
    for name, module in (("iscsi", "hasf.agents.iscsi_initiator"),
                         ("Filesystem", "hasf.agents.filesystem")):
        with open(guest.host_path(name), "w") as handle:
            handle.write(GUEST_LAUNCHER % (lib, module))
        os.chmod(guest.host_path(name), 0o755)
    iscsi, fs = guest.guest_path("iscsi"), guest.guest_path("Filesystem")
    init = {"portal": portal, "target": IQN, "udev": "false"}
    store = {"device": "/dev/sda", "directory": "/mnt/store", "fstype": "ocfs2"}
    return [
        ("iscsid", Command(("iscsid",), timeout=30)),
        ("probe", ocf(iscsi, "monitor", **init)),
        ("discovery", ocf(iscsi, "start", **init)),        # tgtd announces 127.0.0.1
        ("start", ocf(iscsi, "start", discovery_type="static", **init)),
        ("monitor", ocf(iscsi, "monitor", 120000, **init)),
        # OCF 1.1 reload of the monitor/start parameters: the session stays (sessions below)
        ("reload", ocf(iscsi, "reload-agent", try_recovery="true", **init)),
        ("sessions", ["iscsiadm", "-m", "session"]),
        ("fs-probe", ocf(fs, "monitor", **store)),
        ("fs-start", ocf(fs, "start", **store)),
        ("fs-monitor20", ocf(fs, "monitor", 20000, check_level=20, **store)),
        ("write", ["cp", "/etc/hostname", "/mnt/store/written-by-node1"]),
        ("busy-stop", ocf(iscsi, "stop", **init)),         # refused: OCFS2 still mounted
        ("fs-stop", ocf(fs, "stop", **store)),
        # a dm map over the disk: open (mounted) it blocks the logout; idle, it does not
        ("dm-create", dmsetup("create", "hasf-mp", "--table", DM_TABLE)),
        ("dm-mount", ["mount", "-t", "ocfs2", "/dev/mapper/hasf-mp", "/mnt/store"]),
        ("dm-busy-stop", ocf(iscsi, "stop", **init)),      # refused: dm-0 is open
        ("dm-umount", ["umount", "/mnt/store"]),
        ("stop", ocf(iscsi, "stop", **init)),              # the idle map is not in the way
        ("dm-remove", dmsetup("remove", "hasf-mp")),
        ("after", ocf(iscsi, "monitor", 120000, **init)),
    ]
