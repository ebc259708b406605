"""The lab SAN's disk: one raw file on the host, node2's second disk, two OCFS2 volumes.

Why: the seed partitions the SAN node's spare disk and runs mkfs.ocfs2 on
two partitions (Step Four) before the stores can be cloned.  The lab does
the same on the host, before the first boot, so the cluster configuration
can name the stores from the start: each partition is made as a file
(``mkfs.ocfs2 -N 2``, o2cb's classic stack: any o2cb cluster name mounts
it), the disk gets an MBR with ``sfdisk`` and the volumes are copied in at
their partitions' offsets.  node2 exports the whole disk as the LUN
(``/dev/vdb`` there); both nodes see its partitions as
``/dev/disk/by-path/...-lun-1-part1`` and ``-part2``.

``check()`` is the other end: with the cluster stopped, each partition is
copied out again and checked with ``fsck.ocfs2 -fn`` (read-only, full).
"""

import os
import shutil
import subprocess
import tempfile

MIB = 1 << 20
START_MIB = 1                   # the first partition starts at 1 MiB, as fdisk puts it


class SanError(RuntimeError):
    """The SAN disk could not be made or checked."""


def _run(argv, timeout=120, input=None):
    result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                            stdin=None if input is not None else subprocess.DEVNULL)
    if result.returncode != 0:
        raise SanError("%s: rc=%d\n%s%s" % (" ".join(argv), result.returncode,
                                            result.stdout[-2000:], result.stderr[-2000:]))
    return result.stdout


class SanDisk:
    """A raw disk of len(volumes) OCFS2 partitions (volumes: [(label, size_mib)])."""

    def __init__(self, path, volumes=(("imagestore", 256), ("configstore", 128)), slots=2):
        self.path = path
        self.volumes = list(volumes)
        self.slots = slots

    def partitions(self):
        """[(label, offset in bytes, size in bytes)] in partition order."""
        found, start = [], START_MIB
        for label, size in self.volumes:
            found.append((label, start * MIB, size * MIB))
            start += size
        return found

    def make(self):
        """Partition table and volumes (replaces an existing file)."""
        parts = self.partitions()
        end = parts[-1][1] + parts[-1][2] + MIB
        with open(self.path, "wb") as handle:
            handle.truncate(end)
        table = "label: dos\n" + "".join("start=%d, size=%d, type=83\n" % (off // 512, size // 512)
                                         for _label, off, size in parts)
        _run(["sfdisk", "-q", self.path], input=table)
        scratch = tempfile.mkdtemp(prefix="hasf-san-", dir=os.path.dirname(self.path))
        try:
            for label, offset, size in parts:
                volume = os.path.join(scratch, label)
                with open(volume, "wb") as handle:
                    handle.truncate(size)
                _run(["mkfs.ocfs2", "-q", "-F", "-N", str(self.slots), "-L", label, volume])
                _run(["dd", "if=" + volume, "of=" + self.path, "bs=1M", "conv=notrunc,sparse",
                      "seek=%d" % (offset // MIB), "status=none"], timeout=300)
                os.unlink(volume)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return self

    def check(self):
        """{label: (clean, fsck output)}: a read-only full fsck.ocfs2 of every volume.
        Only meaningful while no node has the volumes mounted."""
        results = {}
        scratch = tempfile.mkdtemp(prefix="hasf-fsck-", dir=os.path.dirname(self.path))
        try:
            for label, offset, size in self.partitions():
                volume = os.path.join(scratch, label)
                _run(["dd", "if=" + self.path, "of=" + volume, "bs=1M", "conv=sparse",
                      "skip=%d" % (offset // MIB), "count=%d" % (size // MIB), "status=none"],
                     timeout=300)
                result = subprocess.run(["fsck.ocfs2", "-fn", volume], capture_output=True,
                                        text=True, timeout=300, stdin=subprocess.DEVNULL)
                output = result.stdout + result.stderr
                results[label] = (result.returncode == 0 and "All passes succeeded" in output,
                                  output)
                os.unlink(volume)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return results
