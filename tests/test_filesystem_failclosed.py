"""ocf:hasf:Filesystem never says "stopped" while the filesystem is alive on this node.

Each test is a situation every real node has (issue 9), reproduced with real ext4 on
loop devices, real mount namespaces, a real libvirtd+qemu and a FUSE filesystem whose
daemon is stopped (tests/support/hungfs.py: the stand-in for hung NFS/iSCSI, or OCFS2
waiting for DLM recovery).  Each docstring names the mutation that brings the bug back.
"""

import os
import subprocess
import time

import pytest

from support.hungfs import HungFuse
from lab.ocfrun import AgentRun
from test_filesystem import OCF, LoopDisk, mounted, mounted_anywhere


@pytest.fixture(scope="module")
def agent(hasf_agent):
    return hasf_agent("Filesystem", "hasf.agents.filesystem")


@pytest.fixture
def disk(workdir):
    made = LoopDisk(workdir)
    yield made
    for point in mounted_anywhere(made.device)[::-1]:
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)
    made.cleanup()


def store(agent, workdir, disk, directory, **params):
    return AgentRun(agent, os.path.join(workdir, "rsc"), "store", "Filesystem",
                    device=disk.device, directory=directory, fstype="ext4", **params)


def test_mount_point_through_a_symlink_and_with_a_trailing_slash(agent, workdir, disk):
    """directory reached through a symlinked component (as anything under /var/run is)
    and spelled with a trailing slash: start mounts at the canonical path, monitor sees it,
    stop really unmounts.  Mutation: in Filesystem._make_mount_point return `path` instead
    of its realpath -> start fails with the filesystem left mounted (the bug)."""
    real = os.path.join(workdir, "real")
    os.makedirs(os.path.join(real, "store"))
    os.symlink(real, os.path.join(workdir, "link"))
    fs = store(agent, workdir, disk, os.path.join(workdir, "link", "store") + "/")
    started = fs("start")
    assert started.rc == 0, started
    assert mounted(os.path.join(real, "store"))
    assert fs("monitor").rc == 0 and fs.probe().rc == 0
    assert fs("stop").rc == 0, "stop"
    assert mounted_anywhere(disk.device) == []
    assert fs("monitor").rc == OCF["NOT_RUNNING"]


def test_a_bind_mount_of_a_subdirectory_keeps_it_alive(agent, workdir, disk):
    """A bind mount of a subdirectory elsewhere (as for /var/lib/libvirt/images) is the same
    superblock: with the directory unmounted behind the agent's back it is not stopped, and
    stop removes the bind too.  Mutation: in Filesystem._require_released, return at once
    -> the probe answers 7 while the bind mount is writable."""
    mnt, elsewhere = os.path.join(workdir, "mnt"), os.path.join(workdir, "images")
    fs = store(agent, workdir, disk, mnt)
    assert fs("start").rc == 0
    os.makedirs(os.path.join(mnt, "sub"))
    os.makedirs(elsewhere)
    subprocess.run(["mount", "--bind", os.path.join(mnt, "sub"), elsewhere], check=True)
    subprocess.run(["umount", mnt], check=True)
    probe = fs.probe()
    assert probe.rc == OCF["ERR_GENERIC"], probe
    assert elsewhere in probe.reason and "still mounted" in probe.reason
    assert fs("monitor").rc == OCF["ERR_GENERIC"]
    stopped = fs("stop")
    assert stopped.rc == 0, stopped
    assert mounted_anywhere(disk.device) == []
    assert fs.probe().rc == OCF["NOT_RUNNING"]


def test_a_filesystem_mounted_over_the_directory(agent, workdir, disk):
    """Another filesystem mounted over the mount point hides ours, which stays mounted
    underneath: monitor is an error, not 7, and stop removes both, top first.
    Mutation: in fs_release.targets use `index > i` only for other mount points (drop the
    stacked mount) -> stop times out with EBUSY."""
    mnt = os.path.join(workdir, "mnt")
    fs = store(agent, workdir, disk, mnt)
    assert fs("start").rc == 0
    subprocess.run(["mount", "-t", "tmpfs", "over", mnt], check=True)
    monitor = fs("monitor")
    assert monitor.rc == OCF["ERR_GENERIC"] and "hidden under over" in monitor.reason, monitor
    stopped = fs("stop", timeout=10000)
    assert stopped.rc == 0, stopped
    assert mounted_anywhere(disk.device) == [] and not mounted(mnt)


def test_a_copy_left_in_a_private_namespace(agent, workdir, disk):
    """Only a private namespace's copy left (a container's volume) with a writer: a probe
    must not answer 7; stop with force_unmount=false fails naming where it is mounted;
    with force_unmount it ends the writer and the copy.  Mutation: namespaces.views()
    returning only our own view -> the probe answers 7."""
    mnt = os.path.join(workdir, "mnt")
    fs = store(agent, workdir, disk, mnt)
    assert fs("start").rc == 0
    writer = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "python3", "-c",
         "import os, time\nos.chdir(%r)\nwhile True:\n"
         "    open('w', 'a').write('x'); time.sleep(0.05)" % mnt])
    try:
        time.sleep(0.5)
        subprocess.run(["umount", mnt], check=True)  # gone here, alive in the namespace
        probe = fs.probe()
        assert probe.rc == OCF["ERR_GENERIC"], probe
        assert "mount namespace" in probe.reason
        held = fs("stop", timeout=3000, force_unmount="false")
        assert held.rc == OCF["ERR_GENERIC"] and held.seconds < 3.5, held
        assert "mount namespace" in held.reason and "python3" in held.reason
        assert writer.poll() is None
        stopped = fs("stop", timeout=10000)
        assert stopped.rc == 0, stopped
        assert writer.wait(5) is not None
        assert mounted_anywhere(disk.device) == []
    finally:
        writer.kill()
        writer.wait(5)


def test_a_lazily_detached_busy_mount_is_not_stopped(agent, workdir, disk):
    """umount -l hides the mount from every mountinfo while a process keeps writing: only
    the kernel's refusal of an exclusive open shows it.  Mutation: in
    Filesystem._require_released skip blockdev.claim -> the probe answers 7."""
    mnt = os.path.join(workdir, "mnt")
    fs = store(agent, workdir, disk, mnt)
    assert fs("start").rc == 0
    writer = subprocess.Popen(["python3", "-c", "import time\nf = open(%r, 'w')\nwhile True:\n"
                               "    f.write('x'); f.flush(); time.sleep(0.05)"
                               % os.path.join(mnt, "held")])
    try:
        time.sleep(0.3)
        subprocess.run(["umount", "-l", mnt], check=True)
        assert mounted_anywhere(disk.device) == []
        probe = fs.probe()
        assert probe.rc == OCF["ERR_GENERIC"], probe
        assert "exclusive open" in probe.reason
        stopped = fs("stop", timeout=3000)
        assert stopped.rc == OCF["ERR_GENERIC"], stopped
        assert "kernel still holds it" in stopped.reason
    finally:
        writer.kill()
        writer.wait(5)
    assert fs("stop").rc == 0  # the last user gone, the superblock goes with it


def test_a_failed_start_takes_its_mount_back(agent, workdir, disk):
    """Start mounts, then cannot record what it did (HA_RSCTMP is a file): it must unmount
    again, or the failed start's stop finds nothing and another node mounts the device.
    Mutation: drop the try/except around the post-mount steps in Filesystem.start."""
    mnt = os.path.join(workdir, "mnt")
    bad = os.path.join(workdir, "rsctmp-is-a-file")
    open(bad, "w").close()
    fs = AgentRun(agent, bad, "store", "Filesystem", device=disk.device, directory=mnt,
                  fstype="ext4")
    started = fs("start")
    assert started.rc == OCF["ERR_GENERIC"], started
    assert mounted_anywhere(disk.device) == []


def test_holder_scan_does_not_block_on_a_hung_filesystem(agent, workdir, disk):
    """An unrelated process with a file open on a filesystem that stopped answering, and a
    busy store to stop: the holder scan must not stat through /proc links (that blocks in
    D state until the hung mount returns).  Mutation: in hasf.kernel.holders._how use
    os.stat(task + '/fd/' + fd).st_dev -> this stop runs past its 5 s timeout."""
    mnt = os.path.join(workdir, "mnt")
    fs = store(agent, workdir, disk, mnt)
    assert fs("start").rc == 0
    with HungFuse(workdir) as hung:
        with open(hung.path("file"), "w") as handle:
            handle.write("x")
        bystander = subprocess.Popen(["python3", "-c", "import time; f = open(%r); "
                                      "time.sleep(600)" % hung.path("file")])
        holder = subprocess.Popen(["sleep", "600"], cwd=mnt)
        try:
            time.sleep(0.5)
            hung.freeze()
            stopped = fs("stop", timeout=5000, limit=30)
            assert stopped.rc == 0 and stopped.seconds < 5, stopped
            assert "%d (sleep, cwd)" % holder.pid in stopped.stderr
            assert bystander.poll() is None  # not a holder of ours: left alone
        finally:
            hung.thaw()
            for proc in (bystander, holder):
                proc.kill()
                proc.wait(5)


@pytest.fixture
def hung_disk(workdir):
    """ext4 on a loop device whose backing file lives on the hung-able FUSE filesystem:
    freezing the FUSE daemon makes every I/O to the device wait, as a dead iSCSI LUN."""
    with HungFuse(workdir, "backing") as hung:
        image = hung.path("disk.img")
        with open(image, "wb") as handle:
            handle.truncate(32 << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True, capture_output=True)
        device = subprocess.run(["losetup", "-f", "--show", "--direct-io=off", image],
                                check=True, capture_output=True, text=True).stdout.strip()
        try:
            yield hung, device
        finally:
            hung.thaw()
            for point in mounted_anywhere(device)[::-1]:
                subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)
            subprocess.run(["losetup", "-d", device], capture_output=True, timeout=30)


def test_depth_20_on_a_store_that_stops_answering(agent, workdir, hung_disk):
    """The status write waits on the device forever; the monitor must fail inside its
    timeout (in a bounded child), not hang until Pacemaker kills it.  Mutation: call
    write_status in-process (no isolated.call) -> the monitor is still running at 30 s."""
    hung, device = hung_disk
    mnt = os.path.join(workdir, "mnt")
    fs = AgentRun(agent, os.path.join(workdir, "rsc"), "store", "Filesystem", device=device,
                  directory=mnt, fstype="ext4")
    assert fs("start").rc == 0
    assert fs("monitor", extra={"OCF_CHECK_LEVEL": "20"}).rc == 0
    hung.freeze()
    began = time.monotonic()
    result = fs("monitor", timeout=3000, limit=30, extra={"OCF_CHECK_LEVEL": "20"})
    assert result.rc == OCF["ERR_GENERIC"], result
    assert time.monotonic() - began < 3.5, result
    assert "did not finish within" in result.reason
    # depth 10: dd reading the device waits on it in D state; the runner abandons it
    began = time.monotonic()
    result = fs("monitor", timeout=3000, limit=30, extra={"OCF_CHECK_LEVEL": "10"})
    assert result.rc == OCF["ERR_GENERIC"] and "hung" in result.reason, result
    assert time.monotonic() - began < 3.5, result
    assert fs("monitor", timeout=3000).rc == 0  # depth 0 reads only mountinfo: still 0


def test_depth_20_does_not_follow_a_planted_symlink(agent, workdir, disk):
    """Anyone who can write to the shared store can plant a link where the status file
    goes; root's monitor must not write through it.  Mutation: drop O_NOFOLLOW in
    fs_status._write_block -> the victim file is overwritten with zeros."""
    mnt = os.path.join(workdir, "mnt")
    fs = store(agent, workdir, disk, mnt)
    assert fs("start").rc == 0
    node = "n1"
    depth20 = {"OCF_CHECK_LEVEL": "20", "OCF_RESKEY_CRM_meta_on_node": node}
    victim = os.path.join(workdir, "victim")
    with open(victim, "w") as handle:
        handle.write("precious")
    os.makedirs(os.path.join(mnt, ".Filesystem_status"))
    os.symlink(victim, os.path.join(mnt, ".Filesystem_status", "store-%s" % node))
    result = fs("monitor", extra=depth20)
    assert result.rc == OCF["ERR_GENERIC"], result
    with open(victim) as handle:
        assert handle.read() == "precious"
    os.unlink(os.path.join(mnt, ".Filesystem_status", "store-%s" % node))
    os.rmdir(os.path.join(mnt, ".Filesystem_status"))
    os.symlink(workdir, os.path.join(mnt, ".Filesystem_status"))  # the directory, this time
    assert fs("monitor", extra=depth20).rc == OCF["ERR_GENERIC"]
    assert not os.path.exists(os.path.join(workdir, "store-%s" % node))
    assert fs("stop").rc == 0


def test_a_qemu_in_libvirts_own_mount_namespace_holding_its_image(agent, workdir, disk):
    """libvirt starts each qemu in a mount namespace of its own (a slave of the host's): the
    host's umount succeeds, but this kernel (6.x) then leaves the busy slave copy behind,
    alive and written by qemu, and the holder is invisible to a scan of this namespace.
    Stop must see that copy, find qemu by mount id, end it and remove the copy.  Real
    libvirtd + qemu (TCG) with its disk image on the store.
    Mutation: namespaces.views() returning only our own view -> stop answers 0 with the
    qemu's copy still mounted (the 'mounted nowhere' assertion fails)."""
    from lab.libvirtd import diskless_domain_xml, ensure_system_libvirtd, unique_domain_name
    from lab.libvirtd import virsh

    uri = ensure_system_libvirtd()
    mnt = os.path.join(workdir, "mnt")
    fs = store(agent, workdir, disk, mnt)
    assert fs("start").rc == 0
    # systemd makes every mount shared on a real node, so libvirt's per-qemu namespace gets
    # a *slave* copy; this machine has no systemd: make the store's mount shared as it would
    subprocess.run(["mount", "--make-shared", mnt], check=True)
    image = os.path.join(mnt, "vm1.raw")
    with open(image, "wb") as handle:
        handle.truncate(1 << 20)
    os.chmod(mnt, 0o755)
    os.chmod(image, 0o666)
    name = unique_domain_name("hasf-fs")
    xml = diskless_domain_xml(name).replace(
        "<controller type='usb' model='none'/>",
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
        "<source file='%s'/><target dev='vda' bus='virtio'/></disk>"
        "<controller type='usb' model='none'/>" % image)
    path = os.path.join(workdir, "vm.xml")
    with open(path, "w") as handle:
        handle.write(xml)
    created = virsh(uri, "create", path)
    assert created.returncode == 0, created.stderr
    try:
        pid = int(open("/run/libvirt/qemu/%s.pid" % name).read())
        assert os.readlink("/proc/%d/ns/mnt" % pid) != os.readlink("/proc/self/ns/mnt"), \
            "libvirtd gave qemu no mount namespace of its own: this test proves nothing"
        assert len(mounted_anywhere(disk.device)) == 1  # one mount point, two namespaces
        stopped = fs("stop", timeout=20000)
        assert stopped.rc == 0, stopped
        assert "%d (qemu" % pid in stopped.stderr, stopped.stderr
        assert mounted_anywhere(disk.device) == []
    finally:
        virsh(uri, "destroy", name)
