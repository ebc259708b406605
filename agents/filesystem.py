"""ocf:hasf:Filesystem -- a block-device filesystem mount (ext4, xfs, OCFS2, GFS2, ...).

The scenario's image and config stores: OCFS2 on the SAN, cloned on every
node.  Anchor: heartbeat/Filesystem, same parameter names.  Differences:

- Mounts are read from /proc/self/mountinfo and matched by device number,
  and the number is remembered at start: when the device's /dev/disk/by-path
  link vanishes (an iSCSI session gone) the mount is still recognised --
  never a false "stopped" while the filesystem is mounted.
- Processes holding the filesystem are found by device number through
  /proc (cwd, root, exe, every fd, every mapping): a qemu with its image
  open on OCFS2 is found, which fuser misses (ClusterLabs #1426), and no
  call can block on a dead network filesystem.  Stop is bounded by its
  timeout, never lazy: a filesystem that cannot be released fails the stop
  (and the node gets fenced) rather than being detached while in use.
- A local filesystem (ext4, xfs, ...) in a clone is refused: mounted on two
  nodes at once it is corrupted.  force_clones overrides, as in ClusterLabs.
- OCF_CHECK_LEVEL falls back to the deepest level implemented (ClusterLabs
  answers 6 for 5 or 15); depth 10 reads 16 blocks as documented (it read 1);
  both deeper checks run in a bounded child, so a hung device fails the
  monitor in time instead of hanging it.
"""

import os

from hasf import ocf
from hasf.agents import mounts
from hasf.ocf.params import Checked
from hasf.ocf.remembering import RememberingAgent

#: filesystems made to be mounted on several nodes at once
CLUSTER_FILESYSTEMS = ("ocfs2", "gfs2")
#: without a journal: what run_fsck=auto checks before mounting
NEEDS_FSCK = ("ext2", "minix", "vfat", "msdos")
SIGTERM, SIGKILL = 15, 9
#: with fast_stop, holders get this long after TERM before KILL (else a fifth of the stop)
FAST_GRACE = 1.0


def _is_word(text):
    return bool(text) and all(c.isalnum() or c in "._-" for c in text)


def _is_options(text):
    return not any(c.isspace() for c in text)


class Filesystem(RememberingAgent):
    name, version = "Filesystem", "1.0"
    shortdesc = "Block-device filesystem mount (ext4, xfs, OCFS2, GFS2)"
    longdesc = (
        "Mounts a filesystem on a block device at a directory. For the shared stores of a "
        "cluster (OCFS2, GFS2) run it as a clone; local filesystems are refused in a clone. "
        "Parameter names follow ocf:heartbeat:Filesystem; network filesystems (NFS, CIFS) "
        "and bind mounts are not handled by this agent.")
    identity_fields = ("device", "directory")
    parameters = (
        ocf.Parameter("device", ocf.Path(), required=True, shortdesc="Block device",
                      longdesc="The block device holding the filesystem; /dev/disk/by-uuid, "
                               "by-label or by-path links are best (mount's -U/-L forms are "
                               "not accepted)."),
        ocf.Parameter("directory", ocf.Path(), required=True, unique=True,
                      shortdesc="Mount point",
                      longdesc="Where to mount it; created if missing. Not '/'."),
        ocf.Parameter("fstype", Checked(_is_word, "a filesystem type such as ext4, xfs, "
                                                  "ocfs2"),
                      required=True, shortdesc="Filesystem type",
                      longdesc="The type given to mount -t (ext4, xfs, ocfs2, gfs2, ...)."),
        ocf.Parameter("options", Checked(_is_options, "mount options without whitespace"),
                      default="", shortdesc="Mount options",
                      longdesc="Options for mount -o, comma-separated."),
        ocf.Parameter("run_fsck", ocf.Choice("auto", "force", "no"), default="auto",
                      shortdesc="When to run fsck",
                      longdesc="auto: only for filesystems without a journal (ext2, vfat, ...); "
                               "force: always; no: never."),
        ocf.Parameter("fast_stop", ocf.Boolean(), default=True, shortdesc="Fast stop",
                      longdesc="When processes hold the filesystem at stop, give them 1 s "
                               "after SIGTERM before SIGKILL; false: a fifth of the stop "
                               "timeout."),
        ocf.Parameter("force_unmount", ocf.Choice("true", "safe", "false"), default="true",
                      shortdesc="Kill processes before unmount",
                      longdesc="true or safe: end the processes that hold the filesystem "
                               "(found through /proc, which never blocks, so both mean the "
                               "same here); false: never kill, the stop fails if it is busy."),
        ocf.Parameter("force_clones", ocf.Boolean(), default=False,
                      shortdesc="Allow a local filesystem in a clone",
                      longdesc="A clone of a local filesystem (ext4, xfs) mounts one device "
                               "on several nodes and corrupts it; set true only for devices "
                               "that are really separate on each node."),
        ocf.Parameter("statusfile_prefix", Checked(lambda t: bool(t) and ".." not in t and
                                                   not t.startswith("/"),
                                                   "a relative path prefix"),
                      default=".Filesystem_status/", shortdesc="Status file prefix",
                      longdesc="Relative to the mount point: where the depth-20 monitor "
                               "writes its status file (one per resource and node)."),
    )
    actions = (ocf.Action("start", 60), ocf.Action("stop", 60),
               ocf.Action("monitor", 40, interval=20, depth=0),
               ocf.Action("monitor", 40, interval=60, depth=10),
               ocf.Action("monitor", 60, interval=120, depth=20),
               ocf.Action("validate-all", 10))
    check_levels = (0, 10, 20)

    # --- validation ---------------------------------------------------------------------
    def validate(self):
        p = self.params
        if os.path.normpath(p.directory) == "/":
            raise ocf.NotConfigured("directory must not be /")
        if self.invocation.is_clone and p.fstype not in CLUSTER_FILESYSTEMS \
                and not p.force_clones:
            raise ocf.NotConfigured(
                "%s is a local filesystem: mounted by a clone on several nodes at once it is "
                "corrupted; use a cluster filesystem (%s), or force_clones=true if every node "
                "has its own device" % (p.fstype, ", ".join(CLUSTER_FILESYSTEMS)))
        if mounts.block_device_number(p.device) is None:
            raise ocf.NotInstalled("%s is not a block device on this node" % p.device)
        self._require_fstype(p.fstype)

    def _require_fstype(self, fstype):
        if self._kernel_knows(fstype):
            return
        from hasf.runner import CommandError, run

        try:
            run(["modprobe", "-q", "--", fstype], timeout=15, deadline=self.deadline,
                log=self.log)
        except CommandError as exc:
            self.log.debug("modprobe %s: %s" % (fstype, exc.message))
        if not self._kernel_knows(fstype):
            raise ocf.NotInstalled("the kernel does not support %s (not in /proc/filesystems "
                                   "after modprobe %s)" % (fstype, fstype))

    @staticmethod
    def _kernel_knows(fstype):
        with open("/proc/filesystems") as handle:
            return any(line.split()[-1] == fstype for line in handle if line.strip())

    # --- monitor ------------------------------------------------------------------------
    def state_of(self, device, directory):
        mount = self._ours(device, directory)
        if mount is None:
            return ocf.NOT_RUNNING
        level = self.check_level
        if level >= 10:
            self._read_test(device, mount)
        if level >= 20:
            self._write_test(mount)
        return ocf.SUCCESS

    def _ours(self, device, directory):
        """Our mount at directory, or None (another filesystem there is not ours)."""
        directory = os.path.normpath(directory)
        mount = mounts.on(directory, mounts.mounts())
        if mount is None:
            return None
        if mount.device == mounts.block_device_number(device) or \
                mount.source in (device, os.path.realpath(device)) or \
                mount.device == self._recorded_number(device, directory):
            return mount
        self.log.warning("%s on %s is mounted there, not %s" % (mount.source, directory,
                                                                 device))
        return None

    def _recorded_number(self, device, directory):
        """The device number start saw for this device and directory (read only when the
        device node no longer leads to the mount, e.g. a by-path link gone), or None."""
        stored = self.recorded()
        if stored and len(stored) == 3 and stored[:2] == [device, directory]:
            major, _, minor = stored[2].partition(":")
            return int(major), int(minor)
        return None

    def _read_test(self, device, mount):
        """Depth 10: read 16 blocks straight from the device, in a bounded child."""
        source = device if os.path.exists(device) else mount.source
        result = self._dd(["if=" + source, "of=/dev/null", "bs=4096", "count=16",
                           "iflag=direct"], "reading 16 blocks of %s" % source)
        if "16+0 records in" not in result.stderr:  # a short read: the device shrank or ended
            raise ocf.GenericError("reading 16 blocks of %s: short read (%s)"
                                   % (source, result.stderr.strip().splitlines()[0]))

    def _write_test(self, mount):
        """Depth 20: write and sync a status file on the filesystem, in a bounded child."""
        from hasf.ocf.node import local_node_name

        path = os.path.join(mount.mount_point, self.params.statusfile_prefix +
                            "%s-%s" % (self.invocation.instance or "Filesystem",
                                       local_node_name(self.invocation, self.deadline)))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._dd(["if=/dev/zero", "of=" + path, "bs=4096", "count=1", "oflag=direct,sync"],
                 "writing %s" % path)

    def _dd(self, args, what):
        from hasf.runner import CommandTimeout, run

        try:
            result = run(["dd"] + args, timeout=30, deadline=self.deadline, log=self.log)
        except CommandTimeout as exc:
            raise ocf.GenericError("%s hung: %s" % (what, exc.message)) from None
        if not result.ok:
            raise ocf.GenericError("%s failed: %s" % (what, result.summary()))
        return result

    # --- start --------------------------------------------------------------------------
    def start(self):
        p = self.params
        directory = os.path.normpath(p.directory)
        mount = self._ours(p.device, directory)
        if mount is None:
            other = mounts.on(directory, mounts.mounts())
            if other is not None:
                raise ocf.GenericError("%s is already mounted on %s; refusing to mount %s over "
                                       "it" % (other.source, directory, p.device))
            os.makedirs(directory, exist_ok=True)
            self._fsck()
            self._mount(directory)
            mount = self._ours(p.device, directory)
            if mount is None:
                raise ocf.GenericError("mount of %s on %s reported success but the kernel "
                                       "shows no such mount" % (p.device, directory))
        self.remember(p.device, directory, "%d:%d" % mount.device)
        return None

    def _fsck(self):
        p = self.params
        if p.run_fsck == "no" or (p.run_fsck == "auto" and p.fstype not in NEEDS_FSCK):
            return
        from hasf.runner import run

        result = run(["fsck", "-p", "-t", p.fstype, p.device], deadline=self.deadline,
                     log=self.log)
        if result.rc >= 4:  # 1 and 2: errors corrected
            raise ocf.GenericError("fsck of %s found errors it could not correct: %s"
                                   % (p.device, result.summary()))

    def _mount(self, directory):
        from hasf.runner import run

        p = self.params
        argv = ["mount", "-t", p.fstype] + (["-o", p.options] if p.options else [])
        result = run(argv + ["--", p.device, directory], deadline=self.deadline, log=self.log)
        if not result.ok:
            raise ocf.GenericError("mounting %s on %s failed: %s" % (p.device, directory,
                                                                      result.summary()))

    # --- stop ---------------------------------------------------------------------------
    def release(self, device, directory):
        directory = os.path.normpath(directory)
        unmount = Unmount(self, device, directory)
        if not self.deadline.wait_for(unmount.attempt, 0.1, 1.0):
            raise ocf.GenericError("%s is still mounted on %s after %.0fs of stop%s"
                                   % (device, directory, self.deadline.seconds,
                                      unmount.blame()))


class Unmount:
    """Unmount rounds for stop: umount; if busy, signal the holders (TERM, then KILL)."""

    def __init__(self, agent, device, directory):
        self.agent, self.device, self.directory = agent, device, directory
        self.last_holders = []
        self.termed_at = None
        fast = agent.params.fast_stop is not False
        self.grace = FAST_GRACE if fast else max(FAST_GRACE, agent.deadline.seconds / 5)

    def attempt(self):
        """One round; True once the filesystem is no longer mounted there."""
        import time

        from hasf.runner import CommandTimeout, run

        agent = self.agent
        mount = agent._ours(self.device, self.directory)
        if mount is None:
            return True
        try:
            result = run(["umount", "--", self.directory], deadline=agent.deadline,
                         timeout=30, log=agent.log)
        except CommandTimeout as exc:  # the stop's time is up: report what holds it
            agent.log.warning("umount %s: %s" % (self.directory, exc.message))
            return False
        if result.ok and agent._ours(self.device, self.directory) is None:
            return True
        self.last_holders = mounts.holders(mount.device)
        if not self.last_holders or agent.params.force_unmount == "false":
            agent.log.warning("umount %s: %s" % (self.directory, result.summary()))
            return False
        now = time.monotonic()
        if self.termed_at is None:
            self.termed_at = now
        sig = SIGTERM if now - self.termed_at < self.grace else SIGKILL
        agent.log.warning("%s is busy; sending %s to %s" % (
            self.directory, "SIGTERM" if sig == SIGTERM else "SIGKILL",
            ", ".join(map(repr, self.last_holders))))
        for holder in self.last_holders:
            try:
                os.kill(holder.pid, sig)
            except ProcessLookupError:
                pass
        return False

    def blame(self):
        if not self.last_holders:
            return ""
        return "; held by " + ", ".join(map(repr, self.last_holders[:5])) + (
            " and %d more" % (len(self.last_holders) - 5) if len(self.last_holders) > 5 else "")


main = ocf.main_for(Filesystem)
