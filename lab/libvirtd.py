"""libvirtd on this machine: the host's qemu:///system and private second instances.

Why: hasf's VirtualMachine agent and libvirt fence agent need a real
libvirtd + qemu (the lab's ocf-tester and fence_hasf_libvirt steps, and
their tests); live-migration tests need two *independent* libvirtd
instances on this one machine.

(a) ``ensure_system_libvirtd()`` starts the host virtlogd + libvirtd
    (``virtlogd -d``, ``libvirtd -d``; no systemd here) if ``virsh -c qemu:///system uri`` does not answer;
    serialised with an flock so concurrent sessions start only one.

(b) ``diskless_domain_xml()``: x86_64 'pc' hvm domain without disk, sitting in
    the BIOS; starts in ~0.4 s.  type='qemu' (TCG) by default - /dev/kvm here
    is PVM (kvm_pvm): kvm domains start but cannot really run guests nor be
    migrated reliably.

(c) ``PrivateLibvirtd``: a second root libvirtd in its own netns (on a
    lab.netns bridge, so the host can reach it at ``.address``) and its
    own mount namespace where /run, /var/run/libvirt, /var/lib/libvirt,
    /var/cache/libvirt, /var/log/libvirt and /etc/libvirt are private dirs.
    Its socket is a host-visible file, so from the host its URI is
    ``qemu+unix:///system?socket=<tmp>/run/libvirt-sock`` (``.uri``).  It has
    its own ``host_uuid`` (libvirt refuses to migrate to "the same host"),
    qemu runs as root with security_driver none, stdio_handler=file (no
    virtlogd), no cgroups, no per-qemu mount namespace.

Live migration that works here (verified by tests/test_support_libvirtd.py;
~2 s each for a 64 MiB BIOS-only TCG guest), see ``live_migrate``:

* direct (client-managed), any direction incl. private -> system:
  ``dom.migrate3(dst_conn, {VIR_MIGRATE_PARAM_URI: "tcp://<dst addr>"},
  VIR_MIGRATE_LIVE)`` - dst addr = ``PrivateLibvirtd.address``, or
  ``network.host_address`` for the system libvirtd;
* peer-to-peer towards a PrivateLibvirtd: ``dom.migrateToURI3(priv.uri,
  {VIR_MIGRATE_PARAM_URI: "tcp://<priv.address>"},
  VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER)``.

The domain ends running on the destination only (transient domains vanish
from the source).

libvirt-python has no per-call timeout: use ``call_with_timeout`` (thread +
deadline) or ``virsh`` under ``timeout=``.
"""

import fcntl
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid

from lab.netns import NetnsService, Network
from lab.nsproc import NsHost
from lab.process import wait_until

SYSTEM_URI = "qemu:///system"
LOCK_FILE = "/run/lock/hasf-libvirtd.lock"
_names = itertools.count(1)


# -- generic bounded calls ----------------------------------------------------
def virsh(uri, *args, timeout=30):
    """``virsh -c URI ARGS`` bounded by ``timeout``; CompletedProcess (text)."""
    return subprocess.run(["virsh", "-c", uri] + list(args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def call_with_timeout(func, *args, timeout=30, **kwargs):
    """Run ``func(*args, **kwargs)`` in a daemon thread; return its value or
    re-raise its exception; raise TimeoutError after ``timeout`` seconds (the
    thread is abandoned - libvirt calls cannot be cancelled)."""
    box = {}

    def target():
        try:
            box["value"] = func(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            box["error"] = exc
    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError("%s did not return within %ss" % (getattr(func, "__name__", func),
                                                             timeout))
    if "error" in box:
        raise box["error"]
    return box.get("value")


# -- (a) the host's libvirtd ---------------------------------------------------
VIRTLOGD_SOCK = "/run/libvirt/virtlogd-sock"


def _system_ready():
    kvm_ok = (not os.path.exists("/dev/kvm")) or (os.stat("/dev/kvm").st_mode & 0o060) == 0o060
    return kvm_ok and _virtlogd_answers() and _system_answers()


def _virtlogd_answers():
    """True when virtlogd accepts connections on its socket.

    The socket *file* outlives a killed virtlogd (CI ends every process a
    session left running, but not /run), and qemu domains then fail to
    start with "Connection refused": only a real connect proves it is up."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(2)
    try:
        sock.connect(VIRTLOGD_SOCK)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def _system_answers():
    try:
        return virsh(SYSTEM_URI, "uri", timeout=5).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _ensure_qemu_user():
    if subprocess.run(["getent", "group", "libvirt-qemu"], capture_output=True,
                      timeout=10).returncode != 0:
        subprocess.run(["groupadd", "--system", "libvirt-qemu"], check=True, timeout=30,
                       capture_output=True)
    if subprocess.run(["getent", "passwd", "libvirt-qemu"], capture_output=True,
                      timeout=10).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir",
                        "/var/lib/libvirt", "--shell", "/usr/sbin/nologin", "--gid",
                        "libvirt-qemu", "libvirt-qemu"], check=True, timeout=30,
                       capture_output=True)


def _ensure_kvm_access():
    """Give /dev/kvm Debian's usual root:kvm 0660 and put libvirt-qemu in
    group kvm.  Without it libvirt's capability cache is *always* stale
    ("KVM was enabled when probing ... but it is not available now": the
    probe runs as root, the check as libvirt-qemu) and every domain start
    re-probes all qemu binaries: ~36 s instead of ~0.4 s."""
    if not os.path.exists("/dev/kvm"):
        return
    if subprocess.run(["getent", "group", "kvm"], capture_output=True,
                      timeout=10).returncode != 0:
        subprocess.run(["groupadd", "--system", "kvm"], check=True, timeout=30,
                       capture_output=True)
    groups = subprocess.run(["id", "-nG", "libvirt-qemu"], capture_output=True, text=True,
                            timeout=10).stdout.split()
    if "kvm" not in groups:
        subprocess.run(["usermod", "-a", "-G", "kvm", "libvirt-qemu"], check=True,
                       timeout=30, capture_output=True)
    shutil.chown("/dev/kvm", group="kvm")
    os.chmod("/dev/kvm", 0o660)


def ensure_system_libvirtd(timeout=30):
    """Make sure a libvirtd serves qemu:///system on the host (idempotent,
    safe under concurrency: an flock serialises the check-and-start)."""
    if _system_ready():
        return SYSTEM_URI
    os.makedirs(os.path.dirname(LOCK_FILE), exist_ok=True)
    fd = os.open(LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        wait_until(lambda: _try_flock(fd), timeout, 0.1, "libvirtd start lock")
        if _system_ready():
            return SYSTEM_URI
        for d in ("/var/log/libvirt", "/var/run/libvirt", "/var/lib/libvirt",
                  "/var/cache/libvirt"):
            os.makedirs(d, exist_ok=True)
        _ensure_qemu_user()
        _ensure_kvm_access()
        # -d forks daemons that outlive the test session on purpose: they are
        # the machine's libvirtd/virtlogd, shared by all sessions.  qemu
        # domains need virtlogd (stdio_handler=logd is the default).
        if not _virtlogd_answers():
            _remove_stale(VIRTLOGD_SOCK)
            _start_daemon(["virtlogd", "-d"])
            wait_until(_virtlogd_answers, timeout, 0.1, "virtlogd")
        if not _system_answers():
            _start_reaped_daemon(["libvirtd"])
        wait_until(_system_answers, timeout, 0.2, "libvirtd on qemu:///system")
        return SYSTEM_URI
    finally:
        os.close(fd)


def _remove_stale(path):
    """Remove a socket (or pid) file whose daemon is gone."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _start_reaped_daemon(argv):
    """Start a foreground daemon under tini as a child subreaper, in the background.

    This machine's PID 1 is not an init: it reaps orphans about once a
    second, and libvirt's destroy waits until qemu's process is reaped, so
    every destroy took ~1 s longer than on a node whose systemd reaps at
    once.  qemu processes are libvirtd's grandchildren; with tini -s as
    their subreaper they are reaped immediately, as on a real node.
    """
    with open("/var/log/libvirt/hasf-start.log", "ab") as log:
        subprocess.Popen(["tini", "-s", "--"] + argv, stdin=subprocess.DEVNULL, stdout=log,
                         stderr=subprocess.STDOUT, cwd="/", start_new_session=True,
                         env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})


def _start_daemon(argv):
    """Start a self-daemonising host daemon with a clean environment, output
    to /var/log/libvirt/hasf-start.log (a pipe could be held open by it)."""
    with open("/var/log/libvirt/hasf-start.log", "ab") as log:
        subprocess.run(argv, check=True, timeout=30, stdin=subprocess.DEVNULL, stdout=log,
                       stderr=subprocess.STDOUT, cwd="/", start_new_session=True,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})


def _try_flock(fd):
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


# -- (b) domains -----------------------------------------------------------------
def unique_domain_name(prefix="hasf"):
    """A domain name unique across concurrent test runs: prefix-pid-n-rand."""
    return "%s-%d-%d-%s" % (prefix, os.getpid(), next(_names), uuid.uuid4().hex[:6])


def diskless_domain_xml(name, domain_type="qemu", memory_mib=64, user_net=False,
                        dom_uuid=None):
    """XML of a diskless x86_64 'pc' hvm domain that just sits in the BIOS.

    No disk, no graphics, no USB, no balloon; ``user_net=True`` adds a
    user-mode (slirp) NIC, which needs no bridge and migrates fine."""
    nic = "<interface type='user'><model type='e1000'/></interface>" if user_net else ""
    return (
        "<domain type='%s'><name>%s</name><uuid>%s</uuid>"
        "<memory unit='MiB'>%d</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>"
        "<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot>"
        "<on_crash>destroy</on_crash>"
        "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>"
        "<controller type='usb' model='none'/>%s<memballoon model='none'/></devices>"
        "</domain>" % (domain_type, name, dom_uuid or uuid.uuid4(), memory_mib, nic))


# -- (c) a private second libvirtd ---------------------------------------------
LIBVIRTD_CONF = """\
unix_sock_group = "root"
unix_sock_rw_perms = "0770"
auth_unix_rw = "none"
auth_unix_ro = "none"
host_uuid = "%s"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""
QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
stdio_handler = "file"
cgroup_controllers = [ ]
namespaces = [ ]
migration_address = "%s"
migration_host = "%s"
"""
PRIVATE_DIRS = {
    "/etc/libvirt": "etc",
    "/var/run/libvirt": "run",
    "/var/lib/libvirt": "lib",
    "/var/cache/libvirt": "cache",
    "/var/log/libvirt": "log",
}


class PrivateLibvirtd(NetnsService):
    """A second, independent libvirtd (own netns, own sockets and state).

    ``uri``: usable from the host (unix socket file in the work dir).
    ``address``: its network-namespace address (migration target).
    ``network``: pass a lab.netns.Network to put several instances on one
    bridge; otherwise a private one is created (the host is on every bridge,
    so the system libvirtd can always reach ``address``)."""

    def __init__(self, network=None, name=None, timeout=30):
        self._own_network = network is None
        self.network = network
        self.name = name or "lv%d" % next(_names)
        self.timeout = timeout
        self.workdir = tempfile.mkdtemp(prefix="hasf-libvirtd-")
        self.host = None
        self.proc = None
        self.ns = None
        self.host_uuid = str(uuid.uuid4())

    @property
    def socket(self):
        return os.path.join(self.workdir, "run", "libvirt-sock")

    @property
    def uri(self):
        return "qemu+unix:///system?socket=%s" % self.socket

    @property
    def address(self):
        return self.ns.address

    @property
    def log_file(self):
        return os.path.join(self.workdir, "log", "libvirtd.log")

    def start(self):
        if self.network is None:
            self.network = Network().create()
        self.ns = self.network.add_namespace()
        for sub in PRIVATE_DIRS.values():
            os.makedirs(os.path.join(self.workdir, sub), exist_ok=True)
        for sub in ("qemu", "qemu/networks", "storage", "nwfilter", "secrets"):
            os.makedirs(os.path.join(self.workdir, "etc", sub), exist_ok=True)
        self._seed_capabilities_cache()
        with open(os.path.join(self.workdir, "etc", "libvirtd.conf"), "w") as f:
            f.write(LIBVIRTD_CONF % self.host_uuid)
        with open(os.path.join(self.workdir, "etc", "qemu.conf"), "w") as f:
            f.write(QEMU_CONF % (self.ns.address, self.ns.address))
        scratch = tempfile.mkdtemp(prefix="ns-", dir=self.workdir)
        self.host = NsHost(self.ns.name, self.name, scratch).start()
        self.host.mount_tmpfs("/run")
        self.host.mount_tmpfs("/dev/shm", mode="1777")
        for target, sub in PRIVATE_DIRS.items():
            self.host.bind(os.path.join(self.workdir, sub), target)
        self.proc = self.host.popen(["libvirtd"], os.path.join(self.workdir, "libvirtd.out"))

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("private libvirtd exited rc=%s" % self.proc.returncode)
            return os.path.exists(self.socket) and virsh(self.uri, "uri", timeout=5).returncode == 0
        wait_until(up, self.timeout, 0.1, "private libvirtd %s" % self.name)
        return self

    def _seed_capabilities_cache(self):
        """Copy the host libvirtd's qemu capabilities cache: libvirt re-validates
        it (binary ctimes, kernel, KVM access) and otherwise spends ~7 s
        probing qemu at the first domain operation."""
        src = "/var/cache/libvirt/qemu/capabilities"
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(self.workdir, "cache", "qemu", "capabilities"))

    def stop(self):
        """Destroy its domains (by killing everything in its namespace)."""
        if self.host is not None:
            self.host.kill_all()
            self.host = None
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            self.proc = None
        self.release_namespace()
        shutil.rmtree(self.workdir, ignore_errors=True)


def live_migrate(src_conn, dst_conn, dom_name, dst_address, port=None, timeout=60,
                 p2p_uri=None):
    """Live-migrate ``dom_name`` from src to dst; returns the dst virDomain.

    Default: managed *direct* migration, ``dom.migrate3(dst_conn,
    {VIR_MIGRATE_PARAM_URI: "tcp://<dst_address>[:port]"}, VIR_MIGRATE_LIVE)``.
    With ``p2p_uri`` (the destination's libvirt URI as seen by the *source
    libvirtd*): ``dom.migrateToURI3(p2p_uri, {VIR_MIGRATE_PARAM_URI: ...},
    VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER)``.  P2P works towards a
    PrivateLibvirtd (its socket file is visible from every mount namespace),
    not towards the system libvirtd from a private one (inside its namespace
    /run/libvirt is private, and the system libvirtd has no TCP listener):
    use direct migration for private -> system.  The explicit migrate URI is
    needed because a destination libvirtd's own hostname is meaningless here.
    Bounded by ``timeout``."""
    import libvirt  # imported lazily: only tests with the libvirt marker need it
    uri = "tcp://%s" % dst_address + (":%d" % port if port else "")
    params = {libvirt.VIR_MIGRATE_PARAM_URI: uri}
    dom = call_with_timeout(src_conn.lookupByName, dom_name, timeout=10)
    if p2p_uri:
        call_with_timeout(dom.migrateToURI3, p2p_uri, params,
                          libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER,
                          timeout=timeout)
        return call_with_timeout(dst_conn.lookupByName, dom_name, timeout=10)
    return call_with_timeout(dom.migrate3, dst_conn, params, libvirt.VIR_MIGRATE_LIVE,
                             timeout=timeout)
