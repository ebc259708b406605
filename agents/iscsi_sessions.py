"""The kernel's iSCSI sessions, read from sysfs (scsi_transport_iscsi).

Why sysfs and not `iscsiadm -m session`: the monitor of every initiator
resource runs this, and reading a few small files costs microseconds where
iscsiadm costs a process and a round trip to iscsid (which may itself be
the thing that hangs).  And the *session* state is what says whether the
target is usable (LOGGED_IN / FAILED / FREE); ClusterLabs' agent checks the
connection state instead (#168).

Layout used (stable since Linux 2.6.2x):
  /sys/class/iscsi_session/sessionN/{targetname,state}
  /sys/class/iscsi_session/sessionN/device -> .../hostH/sessionN
      .../sessionN/connectionN:C/iscsi_connection/connectionN:C/{persistent_address,persistent_port}
      .../sessionN/targetH:B:T/H:B:T:L/block/<disk>
"""

import os

from hasf.addresses import format_portal
from hasf.kernel.attrs import entries, read_attr

SYSFS = "/sys"


class Session:
    """One iSCSI session: target, portal(s), state and the block devices it brought."""

    def __init__(self, name, target, state, portals, disks):
        self.name = name            # "session3"
        self.target = target
        self.state = state          # LOGGED_IN, FAILED, FREE
        self.portals = portals      # ["10.0.2.2:3260", ...] (persistent address:port)
        self.disks = disks          # ["sdb", ...]

    @property
    def logged_in(self):
        return self.state == "LOGGED_IN"

    def __repr__(self):
        return "Session(%s %s @%s %s %s)" % (self.name, self.target, ",".join(self.portals),
                                            self.state, self.disks)


def _portal(address, port):
    if address is None or port is None or not port.isdigit():
        return None
    return format_portal(address, port)


def _session(sysfs, name):
    base = os.path.join(sysfs, "class", "iscsi_session", name)
    device = os.path.join(base, "device")
    portals, disks = [], []
    for entry in entries(device):
        if entry.startswith("connection"):
            conn = os.path.join(device, entry, "iscsi_connection", entry)
            portal = _portal(read_attr(os.path.join(conn, "persistent_address")),
                             read_attr(os.path.join(conn, "persistent_port")))
            if portal:
                portals.append(portal)
        elif entry.startswith("target"):
            for lun in entries(os.path.join(device, entry)):
                disks.extend(entries(os.path.join(device, entry, lun, "block")))
    return Session(name, read_attr(os.path.join(base, "targetname")),
                   read_attr(os.path.join(base, "state")), portals, disks)


def sessions(sysfs=SYSFS):
    """Every iSCSI session the kernel has ([] when the iSCSI transport is not even loaded)."""
    root = os.path.join(sysfs, "class", "iscsi_session")
    return [_session(sysfs, name) for name in entries(root) if name.startswith("session")]


def find(target, portal, sysfs=SYSFS):
    """The sessions to `target` through `portal` (address:port, compared case-insensitively)."""
    wanted = portal.lower()
    return [s for s in sessions(sysfs)
            if s.target == target and any(p.lower() == wanted for p in s.portals)]
