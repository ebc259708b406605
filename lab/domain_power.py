"""A lab node as a libvirt domain on the host: power that fence_hasf_libvirt really cuts.

Why: `make crash-test FENCE=libvirt` shows hasf's libvirt fence device in a
live cluster, fencing a node that is a VM -- the usual case for clusters of
virtual machines.  ``DomainPower`` is the node's power then, in place of its
BMC (lab/bmc.py): the node's qemu runs as a persistent domain of the host's
``qemu:///system`` (lab/libvirtd.py starts that libvirtd), so "off" is
libvirt destroying that qemu and "on" starting a new one.

The domain carries the node's whole machine (lab/node.py ``domain_xml``):
direct kernel boot, its disks, the 9p share, the UDP socket link and a
user-mode NIC whose ``hostfwd`` is the host's ssh control channel (the
last two through ``qemu:commandline``: libvirt 9.0 has no port forwards for
slirp).  qemu runs as root (a per-domain DAC label), as the BMC's did.

The fence agent in the surviving node reaches this libvirtd as
``qemu+ssh://root@10.0.2.2:PORT/system`` through ``HostSshd``: an sshd of
the lab's own on the host's 127.0.0.1 (the guests see it as 10.0.2.2),
keys only, its host key given to the nodes, so the agent checks it.

Like the BMCs, everything is bounded: each domain is also destroyed when
the ``DomainPower`` stops, and the sshd runs under ``timeout -s KILL``.
"""

import calendar
import os
import re
import subprocess
import time

from lab.libvirtd import SYSTEM_URI, ensure_system_libvirtd, virsh
from lab.process import Service, kill_group, pid_alive, wait_until
from lab.qemu import tcp_listening

LOG_DIR = "/var/log/libvirt/qemu"
PID_DIR = "/run/libvirt/qemu"
_START = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{3})\+0000: starting up")


class DomainPowerError(RuntimeError):
    """The node's domain could not be defined, started or read."""


class DomainPower(Service):
    """One node's domain: start() defines and starts it; qemu_pid()/power_log()/
    power_status() as NodeBmc has them."""

    def __init__(self, name, domain, directory, lifetime=3600):
        self.name = name
        self.domain = domain
        self.dir = directory
        self.lifetime = lifetime
        self.xml = None             # set by the cluster: the node's domain XML
        self._started_wall = None
        os.makedirs(directory, exist_ok=True)

    def start(self):
        if self.xml is None:
            raise DomainPowerError("DomainPower %s: no domain XML" % self.name)
        ensure_system_libvirtd()
        self._undefine()
        path = os.path.join(self.dir, "domain.xml")
        with open(path, "w") as handle:
            handle.write(self.xml)
        for args in (("define", path), ("start", self.domain)):
            result = virsh(SYSTEM_URI, *args, timeout=60)
            if result.returncode != 0:
                raise DomainPowerError("virsh %s: %s" % (" ".join(args), result.stderr.strip()))
        self._started_wall = time.time() - 2
        return self

    def stop(self):
        self._undefine()

    def _undefine(self):
        virsh(SYSTEM_URI, "destroy", self.domain, timeout=60)
        virsh(SYSTEM_URI, "undefine", self.domain, timeout=60)

    # -- the host's view of the power ----------------------------------------------------
    def qemu_pid(self):
        """The pid of the domain's live qemu, or None (off)."""
        try:
            with open(os.path.join(PID_DIR, self.domain + ".pid")) as handle:
                pid = int(handle.read().strip() or 0)
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid and pid_alive(pid) else None

    def power_log(self):
        """Every start of the domain since start() (libvirt's own domain log): dicts
        with wall and mono (the host's clocks) and pid None."""
        try:
            with open(os.path.join(LOG_DIR, self.domain + ".log")) as handle:
                lines = handle.readlines()
        except FileNotFoundError:
            return []
        offset = time.monotonic() - time.time()
        starts = []
        for line in lines:
            match = _START.match(line)
            if match:
                wall = calendar.timegm(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")) + \
                    int(match.group(2)) / 1000
                if self._started_wall is None or wall >= self._started_wall:
                    starts.append({"event": "on", "pid": None, "wall": wall,
                                   "mono": wall + offset})
        return starts

    def power_status(self):
        """libvirt's answer: True (running), False (shut off)."""
        result = virsh(SYSTEM_URI, "domstate", self.domain, timeout=30)
        if result.returncode != 0:
            raise DomainPowerError("domstate %s: %s" % (self.domain, result.stderr.strip()))
        return result.stdout.strip() == "running"

    def wait_power(self, on, timeout=30):
        wait_until(lambda: (self.qemu_pid() is not None) == on, timeout, 0.05,
                   "domain %s %s" % (self.domain, "running" if on else "off"))
        return time.monotonic()


SSHD_CONFIG = """\
ListenAddress 127.0.0.1
Port %(port)d
HostKey %(host_key)s
AuthorizedKeysFile %(authorized)s
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PidFile none
StrictModes no
"""


class HostSshd(Service):
    """The lab's own sshd on the host's 127.0.0.1:port, for fence_hasf_libvirt's
    qemu+ssh URI: only the lab's key logs in (root), never anyone else."""

    def __init__(self, directory, port, authorized_key, lifetime=3600):
        self.dir = directory
        self.port = port
        self.authorized_key = authorized_key
        self.lifetime = lifetime
        self.host_key = os.path.join(directory, "ssh_host_ed25519_key")
        self.proc = None

    def known_hosts_line(self, host="10.0.2.2"):
        with open(self.host_key + ".pub") as handle:
            key = " ".join(handle.read().split()[:2])
        return "[%s]:%d %s\n" % (host, self.port, key)

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        if not os.path.exists(self.host_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.host_key],
                           check=True, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        authorized = os.path.join(self.dir, "authorized_keys")
        with open(self.authorized_key) as src, open(authorized, "w") as dst:
            dst.write(src.read())
        os.chmod(authorized, 0o600)
        config = os.path.join(self.dir, "sshd_config")
        with open(config, "w") as handle:
            handle.write(SSHD_CONFIG % {"port": self.port, "host_key": self.host_key,
                                        "authorized": authorized})
        os.makedirs("/run/sshd", exist_ok=True)
        with open(os.path.join(self.dir, "sshd.log"), "ab") as log:
            self.proc = subprocess.Popen(["timeout", "-s", "KILL", str(int(self.lifetime)),
                                          "/usr/sbin/sshd", "-D", "-e", "-f", config],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        wait_until(lambda: tcp_listening(self.port), 15, 0.1,
                   "the lab's sshd on 127.0.0.1:%d" % self.port)
        return self

    def stop(self):
        if self.proc is not None:
            kill_group(self.proc)
            self.proc = None
