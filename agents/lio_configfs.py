"""LIO's configfs tree, read and changed in a bounded child: the only door to the kernel target.

Why configfs directly, and not rtslib-fb (the library targetcli uses):
- a monitor must read a few attribute files and nothing else; rtslib's
  RTSRoot() loads kernel modules (kmod) and walks the whole tree, and its
  import alone costs more than the monitor's whole budget;
- rtslib turns every errno into one RTSLibError (or a missing-object
  answer), so "absent" (ENOENT) and "cannot read" (EACCES, EIO) would look
  alike -- the difference between OCF_NOT_RUNNING and an error;
- nothing rtslib does is more than mkdir, symlink, a write of one value or
  rmdir here, and every one of them is done the same way below.

Every read and every change runs in a forked child (hasf.isolated) bounded
by the operation's deadline: an attribute read can wait on a kernel mutex a
stuck device holds, a rmdir of a LUN waits for its in-flight I/O, and
disabling a TPG waits for its sessions to close.  The agent itself never
blocks in the kernel, so a hung configfs is an error within the timeout.

A change is a plan: a list of steps (kind, path[, value]) -- mkdir, rmdir,
unlink, symlink (value: where it points), write, chmod -- run in order in one child.  If a step fails the child reports how
many were done, and `undo` reverses exactly those: a failed start leaves
nothing behind.  Values written (CHAP secrets among them) travel only in
memory -- no argv, no environment -- and errors name the step and the path,
never the value.
"""

import errno
import os

from hasf import isolated
from hasf.kernel import ABSENT
from hasf.ocf.errors import CannotTell, GenericError

ROOT = "/sys/kernel/config"
SYSFS = "/sys"
#: one read snapshot gets at most this long (the kernel answers in microseconds)
READ_TIMEOUT = 5.0
#: one change plan at most this long, unless the deadline leaves less
CHANGE_TIMEOUT = 60.0


class ChangeRefused(GenericError):
    """The kernel refused one step of a change (its errno; the steps before it were done)."""

    def __init__(self, message, done, errno_):
        super().__init__(message)
        self.done = done
        self.errno = errno_


# --- reading (these run in the child) -----------------------------------------------------
def read(path):
    """An attribute's text, stripped; None only when it is not there."""
    try:
        with open(path, "rb") as handle:
            return handle.read(65536).decode("utf-8", "replace").strip("\0\n ")
    except OSError as exc:
        if exc.errno in ABSENT:
            return None
        raise


def listing(path):
    """A directory's entries, sorted; None only when it is not there."""
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        if exc.errno in ABSENT:
            return None
        raise


def link(path):
    """Where the symlink at path points (normalised, absolute); None if it is not a link."""
    try:
        target = os.readlink(path)
    except OSError as exc:
        if exc.errno in ABSENT or exc.errno == errno.EINVAL:
            return None
        raise
    return os.path.normpath(os.path.join(os.path.dirname(path), target))


def exists(path):
    try:
        os.lstat(path)
        return True
    except OSError as exc:
        if exc.errno in ABSENT:
            return False
        raise


def mounted(mount_point):
    """Whether configfs is mounted at mount_point (this process's mount namespace)."""
    with open("/proc/self/mountinfo", "rb") as handle:
        for line in handle.read().decode("utf-8", "replace").splitlines():
            left, _, right = line.partition(" - ")
            fields = left.split()
            if len(fields) > 4 and fields[4] == mount_point and right.split()[:1] == ["configfs"]:
                return True
    return False


def absence(root, sysfs, iqn):
    """Why a target's TPG is not there: "no-tpg" (the target is, its TPG 1 is not),
    "absent" (configfs shows LIO without it), "not-loaded" (no target_core_mod: no LIO
    target exists at all), "unmounted" (LIO is loaded but configfs is not mounted: it
    cannot be seen).  Only a missing path counts; any other error is raised."""
    if exists(os.path.join(root, "target", "iscsi", iqn)):
        return "no-tpg"
    if exists(os.path.join(root, "target")):
        return "absent"
    if not exists(os.path.join(sysfs, "module", "target_core_mod")):
        return "not-loaded"
    return "absent" if mounted(root) else "unmounted"


# --- running a plan (in the child) --------------------------------------------------------
def _step(step):
    kind, path = step[0], step[1]
    if kind == "mkdir":
        os.mkdir(path)
    elif kind == "rmdir":
        os.rmdir(path)
    elif kind == "symlink":
        os.symlink(step[2], path)
    elif kind == "unlink":
        os.unlink(path)
    elif kind == "chmod":
        os.chmod(path, step[2])
    elif kind == "write":
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, step[2].encode("utf-8"))
        finally:
            os.close(fd)
    else:
        raise ValueError("unknown step %r" % kind)


def run_plan(plan, tolerate_absent):
    """Run the steps in order: (done, None) or (done, (errno, strerror)) at the first
    failure.  tolerate_absent: a step whose path is already gone counts as done."""
    for index, step in enumerate(plan):
        try:
            _step(step)
        except OSError as exc:
            if tolerate_absent and exc.errno in ABSENT:
                continue
            return index, (exc.errno or 0, exc.strerror or str(exc))
    return len(plan), None


def undo_plan(plan, done):
    """The steps that reverse the first `done` steps of plan, last first."""
    out = []
    for step in reversed(plan[:done]):
        if step[0] == "mkdir":
            out.append(("rmdir", step[1]))
        elif step[0] == "symlink":
            out.append(("unlink", step[1]))
    return out


def describe(step):
    """A step for a message: never the value written (it may be a secret)."""
    return "%s %s" % (step[0], step[1])


# --- the parent's side --------------------------------------------------------------------
class Configfs:
    """configfs, asked within a deadline; every answer from a bounded child."""

    def __init__(self, deadline=None, log=None, root=ROOT, sysfs=SYSFS):
        self.deadline = deadline
        self.log = log
        self.root = root
        self.sysfs = sysfs

    def path(self, *parts):
        return os.path.join(self.root, "target", *parts)

    def _bound(self, timeout):
        return self.deadline.bound(timeout) if self.deadline is not None else timeout

    def ask(self, func, args, what):
        """func(*args) in a bounded child; CannotTell when it cannot answer."""
        try:
            return isolated.call(func, args, self._bound(READ_TIMEOUT), what)
        except OSError as exc:
            raise CannotTell("cannot read LIO's configfs (%s): %s%s" % (
                what, exc.strerror, " (%s)" % exc.filename if exc.filename else "")) from None
        except (isolated.ChildTimedOut, isolated.ChildFailed) as exc:
            raise CannotTell("cannot read LIO's configfs: %s" % exc.message) from None

    def mount(self, why):
        """Mount configfs at root, as systemd's sys-kernel-config.mount does at boot.

        A node without it (no systemd, a rescue boot, a container) has LIO loaded
        and its objects out of sight: a stop could then neither remove a target nor
        prove it absent.  configfs has one tree whatever mounts it, so mounting it
        shows the kernel's own view.  Start and stop do this; a monitor does not
        change the node and answers "cannot tell" instead."""
        from hasf.runner import CommandError, run

        try:
            result = run(["mount", "-t", "configfs", "configfs", self.root], timeout=10,
                         deadline=self.deadline, log=self.log)
        except CommandError as exc:
            raise CannotTell("configfs is not mounted at %s and mounting it failed (%s): %s"
                             % (self.root, why, exc.message)) from None
        if not self.ask(mounted, (self.root,), "the configfs mount"):
            raise CannotTell("configfs is not mounted at %s and `mount -t configfs` did not "
                             "mount it (%s): %s" % (self.root, why, result.summary()))
        if self.log is not None:
            self.log.info("mounted configfs at %s (%s)" % (self.root, why))

    def apply(self, plan, what, tolerate_absent=False):
        """Run the plan; ChangeRefused (with the count done) if the kernel refuses a step,
        GenericError if the child does not finish in time (then nothing is known)."""
        if not plan:
            return
        if self.log is not None:
            self.log.debug("%s: %s" % (what, "; ".join(describe(s) for s in plan)))
        try:
            done, failure = isolated.call(run_plan, (plan, tolerate_absent),
                                          self._bound(CHANGE_TIMEOUT), what)
        except (isolated.ChildTimedOut, isolated.ChildFailed) as exc:
            raise GenericError("%s: %s" % (what, exc.message)) from None
        if failure is not None:
            raise ChangeRefused("%s: %s failed: %s" % (what, describe(plan[done]), failure[1]),
                                done, failure[0])

    def undo(self, plan, done, what):
        """Reverse the first `done` steps of plan (a failed start); errors are logged."""
        steps = undo_plan(plan, done)
        try:
            self.apply(steps, "undoing " + what, tolerate_absent=True)
            return True
        except GenericError as exc:
            if self.log is not None:
                self.log.error("could not undo %s: %s" % (what, exc.message))
            return False
