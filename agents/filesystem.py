"""ocf:hasf:Filesystem -- a block-device filesystem mount (ext4, xfs, OCFS2, GFS2, ...).

The scenario's image and config stores: OCFS2 on the SAN, cloned on every
node.  Anchor: heartbeat/Filesystem, same parameter names.  Differences:

- A filesystem's identity is its device number plus the canonical mount
  point (symlinks resolved), both recorded at start: when the device's
  /dev/disk/by-path link vanishes (an iSCSI session gone) or the directory
  was given through a symlink (/var/run -> /run) the mount is still
  recognised.
- "Not running" is a claim about the whole node: no mount of the device in
  any mount namespace (bind mounts of subdirectories, over-mounted copies,
  containers' and libvirt's private namespaces) and an exclusive open of
  the block device granted by the kernel.  Anything less is an error, so
  Pacemaker stops it rather than starting it on a second node.
- Stop releases all of it (agents.fs_release): mounts stacked on ours and
  submounts first, in every namespace; holders found by mount id through
  /proc (fdinfo, O_PATH links, maps), so a qemu with its image open on
  OCFS2 is found (ClusterLabs #1426) and no scan can block on a dead
  filesystem.  Bounded by its timeout, never lazy.  A failed start
  unmounts what it mounted.
- A local filesystem (ext4, xfs, ...) in a clone is refused: mounted on two
  nodes at once it is corrupted.  force_clones overrides, as in ClusterLabs.
- OCF_CHECK_LEVEL falls back to the deepest level implemented (ClusterLabs
  answers 6 for 5 or 15); depth 10 reads 16 blocks as documented (it read 1);
  both deeper checks run in a bounded child, so a hung device fails the
  monitor in time instead of hanging it; the depth-20 status file is
  written with O_NOFOLLOW at every step, so a link planted on the shared
  store cannot redirect root's write.
"""

import os

from hasf import ocf
from hasf.kernel import CannotRead, blockdev, mountinfo
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
    refused = ocf.Refusals("hasf.clusterlabs", "FILESYSTEM")  # ClusterLabs' not taken
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
               ocf.Action("reload-agent", 20), ocf.Action("validate-all", 10))
    check_levels = (0, 10, 20)
    #: read only by the operation that uses them (monitor, stop, start): a change needs no
    #: unmount -- which, for a store under running VMs, would stop every one of them
    reloadable = ("statusfile_prefix", "fast_stop", "force_unmount", "run_fsck")

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
        try:
            number = blockdev.device_number(p.device)
        except CannotRead as exc:
            raise ocf.NotInstalled("%s is not a usable block device on this node: %s"
                                   % (p.device, exc.message)) from None
        if number is None:
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

    # --- identity: device number and canonical mount point ------------------------------
    def _place(self, device, directory, resolve=True):
        """(device number or None, canonical mount point): the record start made for this
        device and directory, else what the device node and the path say now (the mount
        point resolved only if `resolve`: it costs a child, and a probe of a device mounted
        nowhere does not need it)."""
        stored = self.recorded()
        if stored and len(stored) >= 4 and stored[:2] == [device, directory]:
            major, _, minor = stored[2].partition(":")
            return (int(major), int(minor)), stored[3]
        try:
            number = blockdev.device_number(device)
        except CannotRead as exc:
            raise ocf.CannotTell(exc.message) from None
        return number, self._canonical(directory) if resolve else None

    def _canonical(self, directory):
        """The mount point as the kernel spells it (symlinks resolved), in a bounded child:
        resolving walks the path, and a component may be a filesystem that hangs."""
        from hasf import isolated

        try:
            return isolated.call(os.path.realpath, (os.path.normpath(directory),),
                                 self.deadline.bound(10), "resolving %s" % directory)
        except (isolated.ChildTimedOut, isolated.ChildFailed) as exc:
            raise ocf.CannotTell(exc.message) from None

    def _scratch(self):
        from hasf.ocf.state import rsctmp

        return os.path.join(rsctmp(self.invocation.environ), "hasf-Filesystem-devices")

    # --- monitor ------------------------------------------------------------------------
    def state_of(self, device, directory):
        number, canonical = self._place(device, directory, resolve=False)
        if canonical is None:
            found = self._mounted_anywhere(number)
            if number is not None and not found:
                self._require_unclaimed(device, number)
                return ocf.NOT_RUNNING  # the usual probe: one child, for the exclusive open
            canonical = self._canonical(directory)
        mount = self._ours(device, number, canonical)
        if mount is None:
            self._require_released(device, number, canonical)
            return ocf.NOT_RUNNING
        level = self.check_level
        if level >= 10:
            self._read_test(device, mount)
        if level >= 20:
            self._write_test(mount)
        return ocf.SUCCESS

    def _ours(self, device, number, canonical):
        """Our mount, visible at the mount point; None if it is not mounted there.
        Mounted there but hidden under another filesystem is an error."""
        try:
            there = mountinfo.at(canonical, mountinfo.table())
        except CannotRead as exc:
            raise ocf.CannotTell(exc.message) from None
        ours = [m for m in there if self._is_ours(m, device, number)]
        if not ours:
            if there:
                self.log.warning("%s is mounted on %s, not %s" % (there[-1].source, canonical,
                                                                 device))
            return None
        if ours[-1] is not there[-1]:
            raise ocf.GenericError("%s is mounted on %s but hidden under %s mounted over it"
                                   % (device, canonical, there[-1].source))
        return ours[-1]

    @staticmethod
    def _is_ours(mount, device, number):
        if number is not None:
            return mount.device == number
        return mount.source == device  # no device node and no record: by name only

    @staticmethod
    def _mounted_anywhere(number):
        """Every mount of the device (and what is stacked on it) in any mount namespace."""
        from hasf.agents.fs_release import targets
        from hasf.kernel import namespaces

        if number is None:
            return []
        try:
            return targets(number, namespaces.tables())
        except CannotRead as exc:
            raise ocf.CannotTell(exc.message) from None

    def _require_released(self, device, number, canonical):
        """'Not mounted at the directory' is 'not running' only if the whole node agrees."""
        from hasf.agents.fs_release import describe

        if number is None:
            return  # the device does not exist here and nothing was started: absent
        found = self._mounted_anywhere(number)
        if found:
            raise ocf.GenericError("%s is not mounted on %s but still mounted on this "
                                   "node: %s" % (device, canonical, describe(found)))
        self._require_unclaimed(device, number)

    def _require_unclaimed(self, device, number):
        """No mount of it anywhere: the kernel must also grant it exclusively."""
        try:
            state = blockdev.claim(device, number, self._scratch(), self.deadline.bound(10))
        except CannotRead as exc:
            raise ocf.CannotTell(exc.message) from None
        if state == blockdev.BUSY:
            held = blockdev.holders(number)
            raise ocf.GenericError("%s is mounted nowhere visible, but the kernel refuses an "
                                   "exclusive open of it%s" % (device, ": held by " +
                                                              ", ".join(held) if held else ""))

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
        from hasf import isolated
        from hasf.agents.fs_status import write_status
        from hasf.ocf.node import local_node_name

        relative = self.params.statusfile_prefix + "%s-%s" % (
            self.invocation.instance or "Filesystem",
            local_node_name(self.invocation, self.deadline))
        what = "writing %s under %s" % (relative, mount.mount_point)
        try:
            isolated.call(write_status, (mount.mount_point, relative),
                          self.deadline.bound(30), what)
        except OSError as exc:
            raise ocf.GenericError("%s failed: %s" % (what, exc.strerror)) from None
        except (isolated.ChildTimedOut, isolated.ChildFailed) as exc:
            raise ocf.GenericError(exc.message) from None

    def _dd(self, args, what):
        from hasf.runner import CommandTimeout, run

        try:
            result = run(["dd"] + args, timeout=30, deadline=self.deadline, log=self.log)
        except CommandTimeout as exc:
            raise ocf.GenericError("%s hung: %s" % (what, exc.message)) from None
        if not result.ok:
            raise ocf.GenericError("%s failed: %s" % (what, result.summary()))
        return result

    # --- reload-agent -------------------------------------------------------------------
    def reload_agent(self):
        """Only `reloadable` parameters changed, and each is read by the operation that uses
        it: nothing to unmount.  The mount must still be ours -- a reload that succeeded on
        a filesystem gone from under it would hide that from Pacemaker."""
        device, directory = self.identity()
        number, canonical = self._place(device, directory)
        if self._ours(device, number, canonical) is None:
            raise ocf.GenericError("%s is not mounted on %s: nothing to reload"
                                   % (device, directory))
        self.log.info("reloaded on %s: %s" % (canonical, " ".join(
            "%s=%s" % (name, getattr(self.params, name)) for name in self.reloadable)))
        return None

    # --- start --------------------------------------------------------------------------
    def start(self):
        p = self.params
        number = blockdev.device_number(p.device)
        canonical = self._make_mount_point(p.directory)
        mount = self._ours(p.device, number, canonical)
        if mount is None:
            self._refuse_other(canonical)
            self._fsck()
            self._mount(canonical)
            try:
                mount = self._ours(p.device, number, canonical)
                if mount is None:
                    raise ocf.GenericError("mount of %s on %s reported success but the kernel "
                                           "shows no such mount" % (p.device, canonical))
                self.remember(p.device, p.directory, "%d:%d" % mount.device, canonical)
            except BaseException:
                self._undo(p.device, number, canonical)
                raise
        else:
            self.remember(p.device, p.directory, "%d:%d" % mount.device, canonical)
        return None

    def _make_mount_point(self, directory):
        """Create the directory if needed and return it canonical (bounded child)."""
        from hasf import isolated

        def make(path):
            os.makedirs(path, exist_ok=True)
            return os.path.realpath(path)

        try:
            return isolated.call(make, (os.path.normpath(directory),), self.deadline.bound(10),
                                 "creating %s" % directory)
        except OSError as exc:
            raise ocf.GenericError("cannot create mount point %s: %s"
                                   % (directory, exc.strerror)) from None
        except (isolated.ChildTimedOut, isolated.ChildFailed) as exc:
            raise ocf.GenericError(exc.message) from None

    def _refuse_other(self, canonical):
        try:
            there = mountinfo.at(canonical, mountinfo.table())
        except CannotRead as exc:
            raise ocf.CannotTell(exc.message) from None
        if there:
            raise ocf.GenericError("%s is already mounted on %s; refusing to mount %s over "
                                   "it" % (there[-1].source, canonical, self.params.device))

    def _undo(self, device, number, canonical):
        """A start that fails after its mount took it back (else: failed start -> stop that
        finds nothing at the directory -> mounted on two nodes)."""
        from hasf.agents.fs_release import Release

        release = Release(device, number, self.deadline, self.log, force=False,
                          scratch=None)  # only its own fresh mount: no exclusive-open proof
        if not self.deadline.wait_for(release.attempt, 0.1, 1.0):
            self.log.error("start failed and %s could not be unmounted again%s"
                           % (canonical, release.blame()))

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
        from hasf.agents.fs_release import Release

        number, canonical = self._place(device, directory)
        if number is None:
            mount = self._ours(device, None, canonical)
            if mount is None:
                return  # no such device here and nothing recorded: nothing was started
            number = mount.device
        fast = self.params.fast_stop is not False
        grace = FAST_GRACE if fast else max(FAST_GRACE, self.deadline.seconds / 5)
        release = Release(device, number, self.deadline, self.log,
                          force=self.params.force_unmount != "false", grace=grace,
                          scratch=self._scratch())
        try:
            done = self.deadline.wait_for(release.attempt, 0.1, 1.0)
        except CannotRead as exc:
            raise ocf.CannotTell("stop of %s: %s" % (device, exc.message)) from None
        if not done:
            raise ocf.GenericError("%s is still in use after %.0fs of stop%s"
                                   % (device, self.deadline.seconds, release.blame()))


main = ocf.main_for(Filesystem)
