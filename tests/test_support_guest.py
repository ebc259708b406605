"""Proves lab.guest (and lab.image under it): a real Debian kernel under qemu
TCG runs batches of commands, loads ocfs2 / iscsi_tcp, mounts an OCFS2
volume made on the host, and two guests share a raw disk and a
guest-to-guest link.

The module is skipped only when the guest image cannot be built for a
reason that is not a bug (not root, no Debian mirror configured or
reachable); every other failure fails.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import psutil
import pytest

from lab import guest as G
from lab import image as I
from lab.debian import debian_mirrors
from lab.qemu import free_tcp_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mmdebstrap, qemu 9p passthrough)"),
]


@pytest.fixture(scope="module")
def image():
    try:
        return I.guest_image()
    except I.GuestImageUnavailable as exc:
        pytest.skip("guest image cannot be built here (environment, not a bug): %s" % exc)


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix="hasf-guest-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def qemu_processes_using(path):
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if "qemu" in (proc.info["name"] or "") and path in " ".join(proc.info["cmdline"] or []):
                found.append(proc.pid)
        except psutil.Error:
            pass
    return found


def assert_cleaned_up(guest_dir):
    assert not os.path.exists(guest_dir), "Guest.stop() left %s" % guest_dir
    assert qemu_processes_using(guest_dir) == []


# -- no boot ------------------------------------------------------------------------
def test_debian_mirrors_read_from_apt_config(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# deb http://old.invalid/debian bookworm main\n"
        "deb [arch=amd64] http://one.invalid/debian bookworm main contrib\n"
        "deb http://other.invalid/x cloud-sdk-bookworm main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# comment\nURIs: http://two.invalid/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb-src\nURIs: http://src.invalid/debian\nSuites: bookworm\nComponents: main\n\n"
        "Types: deb\nURIs: http://sec.invalid/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb\nURIs: http://off.invalid/debian\nSuites: bookworm\nComponents: main\n"
        "Enabled: no\n")
    assert debian_mirrors(apt_dir=str(tmp_path)) == [
        "deb http://one.invalid/debian bookworm main",
        "deb http://two.invalid/debian bookworm main",
        "deb http://two.invalid/debian bookworm-updates main",
        "deb http://sec.invalid/debian-security bookworm-security main",
    ]
    (tmp_path / "sources.list").write_text("deb http://x.invalid/ubuntu jammy main\n")
    for name in os.listdir(tmp_path / "sources.list.d"):
        os.unlink(tmp_path / "sources.list.d" / name)
    with pytest.raises(I.GuestImageUnavailable, match="no Debian bookworm mirror"):
        debian_mirrors(apt_dir=str(tmp_path))


def test_image_is_cached_and_reused(image):
    started = time.monotonic()
    again = I.guest_image()
    assert time.monotonic() - started < 5
    assert again == image
    assert image.directory == os.path.join(I.CACHE_ROOT, I.image_key())
    assert image.kver.endswith("-amd64") and "cloud" not in image.kver
    assert os.stat(image.root).st_mode & 0o222 == 0   # the read-only backing of every overlay
    assert image.manifest["initrd_bytes"] < 32 << 20
    assert [n for n in os.listdir(I.CACHE_ROOT) if n.startswith(".build-")] == []


# -- one guest ----------------------------------------------------------------------
def test_batch_results_share_network_and_persistence(image):
    host_replies = []
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(120)

    def serve():
        try:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(30)
                host_replies.append(conn.recv(100))
                conn.sendall(b"hello guest\n")
        except OSError as exc:
            host_replies.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    port = server.getsockname()[1]
    client = ("import socket, sys\n"
              "s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)\n"
              "s.sendall(b'hello host'); print(s.recv(100).decode().strip())\n")
    with contextlib.closing(server), G.Guest("hasf-t1", image=image) as guest:
        guest_dir = guest.dir
        with open(guest.host_path("in.txt"), "w") as handle:
            handle.write("from the host\n")
        with open(os.path.join(guest.dir, "client.py"), "w") as handle:
            handle.write(client)
        client_path = guest.copy_in(os.path.join(guest.dir, "client.py"))
        started = time.monotonic()
        results = guest.run_batch([
            ["uname", "-r"],
            ["false"],
            ["python3", "-c", "import sys; print('out'); print('err', file=sys.stderr); "
                              "sys.exit(3)"],
            ["cp", guest.guest_path("in.txt"), guest.guest_path("out.txt")],
            ["python3", "-c", "open('/root/marker', 'w').write('boot 1')"],
            ["/no/such/program"],
            G.Command(["cat"], input="via stdin"),
            G.Command(["sleep", "30"], timeout=2),
            ["cat", "/etc/iscsi/initiatorname.iscsi"],
            ["python3", client_path, I.HOST_FROM_GUEST, str(port)],
            G.Command(["sleep", "300"], background=True),
        ])
        first_boot = time.monotonic() - started
        uname, false, three, copy, marker, missing, stdin, sleep, iqn, net, daemon = results
        assert uname.ok and uname.stdout.strip() == image.kver
        assert uname.stdout.strip() != os.uname().release
        assert false.returncode == 1 and not false.ok
        assert (three.returncode, three.stdout, three.stderr) == (3, "out\n", "err\n")
        assert copy.ok and marker.ok
        with open(guest.host_path("out.txt")) as handle:
            assert handle.read() == "from the host\n"
        assert missing.returncode == 127 and "No such file" in missing.stderr
        assert stdin.stdout == "via stdin"
        assert sleep.timed_out and not sleep.ok and sleep.seconds < 10
        assert iqn.stdout.strip() == "InitiatorName=" + guest.initiator
        net.check()
        assert net.stdout.strip() == "hello guest"
        thread.join(10)
        assert host_replies == [b"hello host"]
        assert daemon.background and daemon.pid > 1 and daemon.returncode is None
        with pytest.raises(G.GuestError, match="rc=1"):
            false.check()

        # the overlay persists across boots of one Guest
        started = time.monotonic()
        (again,) = guest.run_batch([["cat", "/root/marker"]])
        second_boot = time.monotonic() - started
        assert again.stdout == "boot 1"
        print("boots: %.1fs, %.1fs" % (first_boot, second_boot))
    assert_cleaned_up(guest_dir)


def test_ocfs2_and_iscsi_modules_load(image):
    with G.Guest("hasf-mods", image=image) as guest:
        modprobe_ocfs2, modprobe_iscsi, filesystems, lsmod = guest.run_batch(
            [["modprobe", "ocfs2"], ["modprobe", "iscsi_tcp"], ["cat", "/proc/filesystems"],
             ["lsmod"]], modules=["ocfs2", "iscsi_tcp"])
        assert [m["returncode"] for m in guest.last_results["modules"]] == [0] * (
            len(I.BASE_MODULES) + 2)
        modprobe_ocfs2.check()
        modprobe_iscsi.check()
        assert "ocfs2" in filesystems.check().stdout.split()
        modules = [line.split()[0] for line in lsmod.check().stdout.splitlines()[1:]]
        assert {"ocfs2", "iscsi_tcp", "sd_mod", "configfs"} <= set(modules)


def test_a_module_that_does_not_load_is_an_error(image):
    with G.Guest("hasf-nomod", image=image) as guest:
        with pytest.raises(G.GuestError, match="hasf_no_such_module"):
            guest.run_batch([["true"]], modules=["hasf_no_such_module"])
        assert not guest.running


def test_host_timeout_kills_qemu_and_shows_the_serial_log(image):
    with G.Guest("hasf-slow", image=image) as guest:
        guest_dir = guest.dir
        with pytest.raises(G.GuestTimeout, match="serial log tail") as info:
            guest.run_batch([["true"]], timeout=3)
        assert "not done after 3s" in str(info.value)
        assert not guest.running
        assert qemu_processes_using(guest_dir) == []
    assert_cleaned_up(guest_dir)


def test_ocfs2_made_on_host_mounted_and_written_in_guest(image, workdir):
    volume = os.path.join(workdir, "ocfs2.img")
    with open(volume, "wb") as handle:
        handle.truncate(256 << 20)
    subprocess.run(["mkfs.ocfs2", "-q", "-M", "local", "-b", "4096", "-C", "4096",
                    "-J", "size=8M", "-N", "1", "-L", "hasflocal", volume],
                   check=True, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    with G.Guest("hasf-ocfs2", image=image, disks=[G.Disk(volume, serial="ocfs2vol")]) as guest:
        device = guest.disk_device(0)
        with open(guest.host_path("payload.txt"), "w") as handle:
            handle.write("written for OCFS2\n")
        results = guest.run_batch([
            ["cat", "/sys/block/vdb/serial"],
            ["mkdir", "-p", "/mnt/ocfs2"],
            ["mount", "-t", "ocfs2", device, "/mnt/ocfs2"],
            ["findmnt", "-n", "-o", "FSTYPE,OPTIONS", "/mnt/ocfs2"],
            ["cp", guest.guest_path("payload.txt"), "/mnt/ocfs2/from-guest.txt"],
            ["sync"],
            ["umount", "/mnt/ocfs2"],
        ], modules=["ocfs2"])
        serial, mkdir, mount, findmnt, copy, sync, umount = results
        assert serial.stdout.strip() == "ocfs2vol"
        for result in (mkdir, mount, findmnt, copy, sync, umount):
            result.check()
        assert findmnt.stdout.split()[0] == "ocfs2" and "rw" in findmnt.stdout
    listing = subprocess.run(["debugfs.ocfs2", "-R", "ls -l /", volume], capture_output=True,
                             text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert listing.returncode == 0, listing.stderr
    assert "from-guest.txt" in listing.stdout
    content = subprocess.run(["debugfs.ocfs2", "-R", "cat /from-guest.txt", volume],
                             capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
    assert content.stdout == "written for OCFS2\n"
    fsck = subprocess.run(["fsck.ocfs2", "-n", volume], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


# -- two guests -----------------------------------------------------------------------
SERVER = """\
import os, socket, sys
address, port, disk = sys.argv[1], int(sys.argv[2]), sys.argv[3]
listener = socket.socket()
listener.bind((address, port))
listener.listen(1)
listener.settimeout(90)
conn, _ = listener.accept()
conn.settimeout(30)
peer = conn.recv(100).decode()
with open(disk, "r+b", buffering=0) as dev:
    dev.seek(1 << 20)
    dev.write(b"written-by-node1")
    os.fsync(dev.fileno())
conn.sendall(b"written")
print("peer:", peer)
"""

CLIENT = """\
import socket, sys, time
address, port = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 90
while True:
    try:
        conn = socket.create_connection((address, port), timeout=5)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.5)
conn.settimeout(30)
conn.sendall(socket.gethostname().encode())
print(conn.recv(100).decode())
"""


def test_two_guests_share_a_disk_and_a_lan(image, workdir):
    shared = os.path.join(workdir, "shared.img")
    with open(shared, "wb") as handle:
        handle.write(b"hasf-shared-disk")
        handle.truncate(64 << 20)
    port = free_tcp_port()
    disk = [G.Disk(shared, shared=True, serial="shared0")]
    node1 = G.Guest("node1", image=image, disks=disk, lan_listen=port,
                    lan_address="192.168.213.1/24")
    node2 = G.Guest("node2", image=image, disks=disk, lan_connect=port,
                    lan_address="192.168.213.2/24")
    with node1, node2:
        dirs = [node1.dir, node2.dir]
        assert node1.initiator != node2.initiator and node1.mac != node2.mac
        for guest, name, text in ((node1, "server.py", SERVER), (node2, "client.py", CLIENT)):
            with open(guest.host_path(name), "w") as handle:
                handle.write(text)
        head = ["dd", "if=/dev/vdb", "bs=16", "count=1", "status=none"]
        node1.start_batch([head, ["python3", node1.guest_path("server.py"), "192.168.213.1",
                                  "7000", "/dev/vdb"]])
        node2.start_batch([head, G.Command(["python3", node2.guest_path("client.py"),
                                            "192.168.213.1", "7000"], timeout=120),
                           ["dd", "if=/dev/vdb", "bs=4096", "skip=256", "count=1",
                            "iflag=direct", "status=none"],
                           ["cat", "/etc/iscsi/initiatorname.iscsi"]])
        head1, server = node1.wait_batch()
        head2, client, read_back, iqn2 = node2.wait_batch()
        assert head1.stdout == head2.stdout == "hasf-shared-disk"
        assert server.check().stdout.strip() == "peer: node2"
        assert client.check().stdout.strip() == "written"
        assert read_back.check().stdout.startswith("written-by-node1")
        assert iqn2.stdout.strip() == "InitiatorName=" + node2.initiator
    with open(shared, "rb") as handle:
        handle.seek(1 << 20)
        assert handle.read(16) == b"written-by-node1"
    for path in dirs:
        assert_cleaned_up(path)


def test_old_images_are_pruned_but_not_one_being_built(tmp_path):
    """After a build, only the newest older image stays; one whose lock is held stays too."""
    import fcntl

    cache = str(tmp_path)
    paths = []
    for age, name in ((300, "oldest"), (200, "older"), (100, "old"), (0, "new")):
        path = os.path.join(cache, name)
        os.makedirs(path)
        manifest = os.path.join(path, "manifest.json")
        with open(manifest, "w") as handle:
            handle.write("{}")
        os.utime(manifest, (time.time() - age, time.time() - age))
        paths.append(path)
    busy = os.open(paths[0] + ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(busy, fcntl.LOCK_EX)
    try:
        I._prune(cache, keep=paths[3])
    finally:
        os.close(busy)
    assert [os.path.isdir(p) for p in paths] == [True, False, True, True]
