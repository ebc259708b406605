"""ocf:hasf:Filesystem against real ext4 filesystems on loop devices.

OCFS2 cannot be mounted on this host (no kernel modules); what this file
proves with ext4 -- mount matching by device number, holders found through
/proc, bounded stop, clone refusal -- is fstype-independent, the refusal of
ocfs2 without kernel support is tested here for real, and an OCFS2 mount by
this agent runs in a guest kernel (tests/test_iscsi_guest.py).  Every mount and loop device is undone afterwards, whatever
the test did.
"""

import os
import shutil
import subprocess
import time

import pytest

from lab.ocfrun import AgentRun

OCF = {"SUCCESS": 0, "ERR_GENERIC": 1, "ERR_CONFIGURED": 6, "ERR_INSTALLED": 5,
       "NOT_RUNNING": 7}


@pytest.fixture(scope="module")
def agent(hasf_agent):
    return hasf_agent("Filesystem", "hasf.agents.filesystem")


class LoopDisk:
    """An ext4 image on a loop device; removes mounts on its mount points and itself."""

    def __init__(self, workdir, name="disk", mib=32):
        self.image = os.path.join(workdir, name + ".img")
        with open(self.image, "wb") as handle:
            handle.truncate(mib << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", self.image], check=True, timeout=60,
                       capture_output=True)
        self.device = subprocess.run(["losetup", "-f", "--show", self.image], check=True,
                                     timeout=30, capture_output=True,
                                     text=True).stdout.strip()

    def cleanup(self, *mount_points):
        for point in mount_points:
            for _ in range(5):
                if subprocess.run(["mountpoint", "-q", point], timeout=10).returncode != 0:
                    break
                subprocess.run(["umount", "-l", point], timeout=30, capture_output=True)
        subprocess.run(["losetup", "-d", self.device], timeout=30, capture_output=True)


@pytest.fixture
def fs(agent, workdir):
    disk = LoopDisk(workdir)
    mnt = os.path.join(workdir, "mnt")
    run = AgentRun(agent, os.path.join(workdir, "rsc"), "store", "Filesystem",
                   device=disk.device, directory=mnt, fstype="ext4")
    run.disk, run.mnt = disk, mnt
    yield run
    disk.cleanup(mnt, os.path.join(workdir, "other"))


def mounted(point):
    return subprocess.run(["mountpoint", "-q", point], timeout=10).returncode == 0


def test_ocf_tester_passes(agent, workdir):
    disk = LoopDisk(workdir)
    mnt = os.path.join(workdir, "ocft")
    try:
        proc = subprocess.run(["ocf-tester", "-v", "-n", "ocft-fs", "-o", "device=" + disk.device,
                               "-o", "directory=" + mnt, "-o", "fstype=ext4", agent],
                              capture_output=True, text=True, timeout=180,
                              env=dict(os.environ, HA_RSCTMP=os.path.join(workdir, "rsc")))
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "passed all tests" in proc.stdout
        assert not mounted(mnt)
    finally:
        disk.cleanup(mnt)


def test_lifecycle_at_every_depth(fs):
    assert fs.probe().rc == OCF["NOT_RUNNING"]
    assert fs("start").rc == 0 and mounted(fs.mnt)
    assert fs("start").rc == 0  # idempotent
    for level in ("0", "10", "20", "15"):  # 15 falls back to 10, not ERR_CONFIGURED
        result = fs("monitor", extra={"OCF_CHECK_LEVEL": level})
        assert result.rc == 0, (level, result)
    assert os.listdir(os.path.join(fs.mnt, ".Filesystem_status"))  # depth 20 wrote its file
    assert fs("stop").rc == 0 and not mounted(fs.mnt)
    assert fs("stop").rc == 0
    assert fs("monitor").rc == OCF["NOT_RUNNING"]


# a mapping with no descriptor left (Python's mmap module keeps a dup'd fd, so use libc)
MAP_AND_CLOSE = """
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
fd = os.open(%r, os.O_RDONLY)
assert libc.mmap(None, 4096, 1, 1, fd, 0) not in (None, ctypes.c_void_p(-1).value)
os.close(fd)
time.sleep(600)
"""


def test_stop_ends_every_kind_of_holder(fs):
    """cwd, an open fd (as qemu holds an image), a mapping without a descriptor and a
    running executable each keep the filesystem busy; stop finds all of them through /proc
    by device number and unmounts."""
    assert fs("start").rc == 0
    data = os.path.join(fs.mnt, "image.raw")
    with open(data, "wb") as handle:
        handle.truncate(1 << 20)
    sleeper = os.path.join(fs.mnt, "sleep")
    shutil.copy("/bin/sleep", sleeper)
    holders = [
        subprocess.Popen(["sleep", "600"], cwd=fs.mnt),
        subprocess.Popen(["python3", "-c", "import time; f = open(%r, 'rb'); time.sleep(600)"
                          % data], cwd="/"),
        subprocess.Popen(["python3", "-c", MAP_AND_CLOSE % data], cwd="/"),
        subprocess.Popen([sleeper, "600"], cwd="/"),
    ]
    try:
        time.sleep(0.5)
        assert all(p.poll() is None for p in holders)
        assert subprocess.run(["umount", fs.mnt], capture_output=True).returncode != 0  # busy
        stopped = fs("stop", timeout=20000)
        assert stopped.rc == 0, stopped
        assert not mounted(fs.mnt)
        assert all(p.wait(5) is not None for p in holders)
        for how in ("cwd", "fd 3", "mmap", "exe"):
            assert how in stopped.stderr, (how, stopped.stderr)
    finally:
        for p in holders:
            p.kill()
            p.wait(5)


def test_a_private_namespace_copy_with_a_writer_is_released_too(fs):
    """A process in another mount namespace (a container, a service's private namespace)
    holds a copy of the mount: the superblock stays alive and writable there, so a stop
    that left it would let a second node mount the same ext4.  Stop ends that holder too
    and removes the copy; nothing of the device stays mounted anywhere on the node.
    (This test once required the opposite -- rc 0 with the copy still there.)
    Mutation: in fs_release.targets, keep only views with view.here -> rc 0 while the
    copy lives (the 'mounted nowhere' assertion fails)."""
    assert fs("start").rc == 0
    here = subprocess.Popen(["sleep", "600"], cwd=fs.mnt)
    elsewhere = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "python3", "-c",
         "import os, time; os.chdir(%r)\nwhile True:\n"
         "    open('w', 'a').write('x'); time.sleep(0.05)" % fs.mnt])
    try:
        time.sleep(0.5)
        assert here.poll() is None and elsewhere.poll() is None
        stopped = fs("stop", timeout=20000)
        assert stopped.rc == 0, stopped
        assert not mounted(fs.mnt)
        assert here.wait(5) is not None and elsewhere.wait(5) is not None
        assert "%d (" % elsewhere.pid in stopped.stderr  # named when it was signalled
        assert mounted_anywhere(fs.disk.device) == []
    finally:
        for proc in (here, elsewhere):
            proc.kill()
            proc.wait(5)


def mounted_anywhere(device):
    """Mount points of device in any mount namespace, as /proc/*/mountinfo show them."""
    number = os.stat(device).st_rdev
    wanted = "%d:%d" % (os.major(number), os.minor(number))
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/mountinfo" % pid) as handle:
                found.update(line.split()[4] for line in handle if line.split()[2] == wanted)
        except OSError:
            pass
    return sorted(found)


def test_force_unmount_false_fails_in_time_and_names_the_holder(fs):
    assert fs("start").rc == 0
    holder = subprocess.Popen(["sleep", "600"], cwd=fs.mnt)
    try:
        time.sleep(0.3)
        stopped = fs("stop", timeout=3000, force_unmount="false")
        assert stopped.rc == OCF["ERR_GENERIC"] and stopped.seconds < 4, stopped
        assert "still mounted" in stopped.reason and "sleep" in stopped.reason
        assert holder.poll() is None and mounted(fs.mnt)
    finally:
        holder.kill()
        holder.wait(5)
    assert fs("stop").rc == 0


def test_mount_kept_recognised_when_the_device_link_vanishes(fs, workdir):
    """The scenario's device is a /dev/disk/by-path link that disappears with the iSCSI
    session: the filesystem is still mounted, so monitor and stop must still see it."""
    link = os.path.join(workdir, "by-path-lun1")
    os.symlink(fs.disk.device, link)
    assert fs("start", device=link).rc == 0
    os.unlink(link)
    assert fs("monitor", device=link).rc == 0  # remembered device number
    assert fs.probe(device=link).rc == 0
    assert fs("stop", device=link).rc == 0 and not mounted(fs.mnt)


def test_another_filesystem_on_the_mount_point_is_not_ours(fs, agent, workdir):
    other = LoopDisk(workdir, "other")
    try:
        os.makedirs(fs.mnt)
        subprocess.run(["mount", other.device, fs.mnt], check=True, timeout=30)
        assert fs("monitor").rc == OCF["NOT_RUNNING"]
        started = fs("start")
        assert started.rc == OCF["ERR_GENERIC"] and "refusing to mount" in started.reason
        assert fs("stop").rc == 0
        assert mounted(fs.mnt)  # the other one is left alone
    finally:
        other.cleanup(fs.mnt)


def test_local_filesystem_refused_in_a_clone(fs):
    clone = {"OCF_RESKEY_CRM_meta_clone": "0", "OCF_RESKEY_CRM_meta_clone_max": "2"}
    started = fs("start", extra=clone)
    assert started.rc == OCF["ERR_CONFIGURED"] and "local filesystem" in started.reason
    assert not mounted(fs.mnt)
    assert fs("start", extra=clone, force_clones="true").rc == 0
    assert fs("stop", extra=clone).rc == 0


def test_ocfs2_without_kernel_support_is_not_installed(fs):
    started = fs("start", fstype="ocfs2", extra={"OCF_RESKEY_CRM_meta_clone_max": "2"})
    assert started.rc == OCF["ERR_INSTALLED"], started
    assert "does not support ocfs2" in started.reason


def test_bad_parameters_and_missing_device(fs):
    result = fs("start", directory="relative/dir", fstype="ext4;rm", options="a b")
    assert result.rc == OCF["ERR_CONFIGURED"]
    for name in ("directory", "fstype", "options"):
        assert name in result.reason
    assert fs("start", directory="/").rc == OCF["ERR_CONFIGURED"]
    missing = fs("start", device="/dev/hasf-no-such-disk")
    assert missing.rc == OCF["ERR_INSTALLED"] and "not a block device" in missing.reason
    assert fs.probe(device="").rc == OCF["NOT_RUNNING"]  # nothing recorded, nothing mounted


def test_depth_10_on_a_device_that_fails(fs, workdir):
    """The loop device's backing file replaced by nothing readable: the read check errors
    out (never 'not running') while the mount itself is still there."""
    assert fs("start").rc == 0
    subprocess.run(["losetup", "-c", fs.disk.device], timeout=10)
    with open(fs.disk.image, "r+b") as handle:
        handle.truncate(0)
    subprocess.run(["losetup", "-c", fs.disk.device], timeout=10)
    result = fs("monitor", extra={"OCF_CHECK_LEVEL": "10"})
    assert result.rc == OCF["ERR_GENERIC"], result
    assert "reading 16 blocks" in result.reason
    assert fs("monitor").rc == 0  # depth 0: still mounted


STORE = """\
<primitive id="store" class="ocf" provider="hasf" type="Filesystem">
  <instance_attributes id="store-ia">
    <nvpair id="store-device" name="device" value="%(device)s"/>
    <nvpair id="store-directory" name="directory" value="%(directory)s"/>
    <nvpair id="store-fstype" name="fstype" value="ext4"/>
  </instance_attributes>
  <operations>
    <op id="store-monitor" name="monitor" interval="2s" timeout="20s">
      <instance_attributes id="store-monitor-ia">
        <nvpair id="store-monitor-depth" name="OCF_CHECK_LEVEL" value="10"/>
      </instance_attributes>
    </op>
    <op id="store-stop" name="stop" interval="0s" timeout="20s"/>
  </operations>
</primitive>
"""


def test_pacemaker_mounts_recovers_and_stops_a_busy_store(agent, workdir):
    """Under a real Pacemaker node (its own mount namespace): started and monitored at depth
    10 by pacemaker-execd; an unmount behind Pacemaker's back is detected and the store
    mounted again; a process inside the node holding the mount does not stop the stop."""
    from support.pacemaker import PacemakerCluster
    from lab.process import wait_until

    disk = LoopDisk(workdir)
    mnt = os.path.join(workdir, "pcmk-store")
    binds = [(os.path.dirname(agent), "/usr/lib/ocf/resource.d/hasf")]
    try:
        with PacemakerCluster(["node1"], extra_binds=binds) as cluster:
            cluster.wait_online(60)

            def in_node_mounted():
                return cluster.run("node1", ["mountpoint", "-q", mnt]).returncode == 0

            def role():
                for res in cluster.status().iter("resource"):
                    if res.get("id") == "store":
                        return res.get("role")
                return None

            def failcount():
                out = cluster.run("node1", ["crm_failcount", "--query", "-r", "store",
                                            "-N", "node1"]).stdout
                return "value=" in out and "value=0" not in out
            try:
                created = cluster.run("node1", ["cibadmin", "-C", "-o", "resources", "-X",
                                                STORE % {"device": disk.device,
                                                         "directory": mnt}])
                assert created.returncode == 0, created.stderr
                wait_until(lambda: role() == "Started" and in_node_mounted(), 60, 0.5,
                           "store mounted by pacemaker")
                assert cluster.run("node1", ["umount", mnt]).returncode == 0
                wait_until(failcount, 30, 0.5, "the lost mount noticed by the monitor")
                wait_until(lambda: role() == "Started" and in_node_mounted(), 60, 0.5,
                           "store mounted again")
                node = cluster.nodes["node1"]
                holder = node.host.popen(
                    ["python3", "-c", "import os, time; os.chdir(%r); time.sleep(600)" % mnt],
                    os.path.join(workdir, "holder.out"))
                wait_until(lambda: os.readlink("/proc/%d/cwd" % holder.pid) == mnt, 10, 0.1,
                           "the holder inside the mounted store")
                stop = cluster.run("node1", ["crm_resource", "-r", "store", "--meta", "-p",
                                             "target-role", "-v", "Stopped"])
                assert stop.returncode == 0, stop.stderr
                wait_until(lambda: role() == "Stopped" and not in_node_mounted(), 30, 0.5,
                           "store stopped")
                assert holder.wait(10) is not None
            except AssertionError:
                print(cluster.dump_logs(80))
                raise
    finally:
        disk.cleanup(mnt)
