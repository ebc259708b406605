"""A logical unit's SCSI identity, the same on every node that exports it.

An initiator (multipath, /dev/disk/by-id, udev's scsi_id) recognises a disk
by its VPD pages: 0x83 (device identification, from scsi_id) and 0x80 (unit
serial number, from scsi_sn).  Left to itself a target derives them from
its own numbering (tgt: the target id, which differs between nodes), so a
SAN failover would show a different disk.  The defaults here depend only on
the resource instance name, and are ClusterLabs' iSCSILogicalUnit defaults:
an administrator switching agents keeps the identity the initiators know.
"""

SCSI_ID_LENGTH = 16
SCSI_SN_LENGTH = 8
#: derived tids fall in 1 .. 2**20 - 1: far above the small tids administrators pick by hand,
#: well inside the 28 bits tgt's NAA-local designator holds
TID_SPACE = 1 << 20


def default_scsi_id(instance):
    """ClusterLabs' default: the instance name's first 16 characters (what every target takes)."""
    return instance[:SCSI_ID_LENGTH]


def default_scsi_sn(instance):
    """ClusterLabs' default: the first 8 hex digits of the instance name's MD5."""
    return _md5_hex(instance)[:SCSI_SN_LENGTH]


def default_tid(iqn):
    """tgt's default target id for iqn, the same on every node.

    tgt writes the tid into page 0x83 itself (a locally assigned NAA
    designator, tid << 32 | lun) and no LU parameter overrides it; with the
    lowest free tid, a SAN node that serves another target got a different
    one and the page changed on failover.  Derived from the IQN, every node
    picks the same tid unless another target already holds it there."""
    return 1 + int(_md5_hex(iqn)[:8], 16) % (TID_SPACE - 1)


def _md5_hex(text):
    """MD5 here names a disk, it protects nothing; usedforsecurity=False keeps it
    available on FIPS-mode nodes."""
    import hashlib  # only the actions that create a unit or target pay for it

    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def identity(instance, scsi_id=None, scsi_sn=None):
    """(scsi_id, scsi_sn): explicit values win, the rest derived from the instance name."""
    return (scsi_id or default_scsi_id(instance), scsi_sn or default_scsi_sn(instance))
