"""An sshd "host" in its own network namespace, reachable from the host.

Why: hasf's ssh-based fencing/monitoring must be tested against a real sshd
with strict host-key checking, and against a node that becomes unreachable.
``NamespaceSshd`` runs ``/usr/sbin/sshd -D`` inside an ``NsHost`` (own netns
on a lab.netns bridge, private /run so /run/sshd and the pid file never
touch the host), with a generated ed25519 host key and client key in a temp
dir and a ``known_hosts`` file that pins the host key to ``address``.

Attributes: ``address`` (namespace IP, port 22), ``known_hosts``,
``identity`` (client private key), ``user`` ("root"), ``log_file``.
``ssh_argv(*cmd)`` / ``ssh(*cmd)`` run a remote command with
BatchMode=yes, StrictHostKeyChecking=yes, ``-F /dev/null``.
``down()`` makes it unreachable (link down: connections time out; or
``how="kill"``: sshd killed, connections refused); ``up()`` undoes it.
"""

import os
import shutil
import subprocess
import tempfile

from lab.netns import NetnsService, Network
from lab.nsproc import NsHost
from lab.process import kill_group, wait_until

SSHD_CONFIG = """\
Port 22
ListenAddress %(address)s
HostKey %(dir)s/host_ed25519
PidFile /run/sshd.pid
AuthorizedKeysFile %(dir)s/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
LogLevel VERBOSE
"""


def _keygen(path, comment):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
                   check=True, timeout=30, capture_output=True, stdin=subprocess.DEVNULL)


class NamespaceSshd(NetnsService):
    """Context manager: sshd in a fresh network namespace."""

    def __init__(self, network=None, hostname="sshnode", timeout=10):
        self._own_network = network is None
        self.network = network
        self.hostname = hostname
        self.timeout = timeout
        self.dir = tempfile.mkdtemp(prefix="hasf-sshd-")
        self.identity = os.path.join(self.dir, "id_ed25519")
        self.known_hosts = os.path.join(self.dir, "known_hosts")
        self.log_file = os.path.join(self.dir, "sshd.log")
        self.user = "root"
        self.ns = None
        self.host = None
        self.proc = None

    @property
    def address(self):
        return self.ns.address

    def start(self):
        if self.network is None:
            self.network = Network().create()
        self.ns = self.network.add_namespace()
        _keygen(os.path.join(self.dir, "host_ed25519"), "hasf-test-host")
        _keygen(self.identity, "hasf-test-client")
        shutil.copy(self.identity + ".pub", os.path.join(self.dir, "authorized_keys"))
        with open(os.path.join(self.dir, "host_ed25519.pub")) as f:
            keytype, key = f.read().split()[:2]
        with open(self.known_hosts, "w") as f:
            f.write("%s %s %s\n" % (self.address, keytype, key))
        with open(os.path.join(self.dir, "sshd_config"), "w") as f:
            f.write(SSHD_CONFIG % {"address": self.address, "dir": self.dir})
        self.host = NsHost(self.ns.name, self.hostname,
                           tempfile.mkdtemp(prefix="ns-", dir=self.dir)).start()
        self.host.mount_tmpfs("/run")
        # An empty home: root's ~/.bashrc (bash reads it for sshd sessions) may run pyenv
        # init, which blocks 60 s on a shim lock left by a killed session.
        self.host.mount_tmpfs("/root", mode="0700")
        self.host.run(["mkdir", "-m", "0755", "/run/sshd"], check=True)
        self._start_sshd()
        return self

    def _start_sshd(self):
        self.proc = self.host.popen(["/usr/sbin/sshd", "-D", "-e", "-f",
                                     os.path.join(self.dir, "sshd_config")], self.log_file)

        def listening():
            if self.proc.poll() is not None:
                raise RuntimeError("sshd exited rc=%s" % self.proc.returncode)
            out = self.host.run(["ss", "-Htln", "sport", "=", ":22"], timeout=5).stdout
            return self.address in out
        wait_until(listening, self.timeout, 0.05, "sshd listening on %s" % self.address)

    def ssh_argv(self, *cmd, connect_timeout=3):
        """argv of an ssh client call to this host (strict, non-interactive)."""
        return ["ssh", "-F", "/dev/null", "-i", self.identity, "-o", "IdentitiesOnly=yes",
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", "UserKnownHostsFile=%s" % self.known_hosts,
                "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "ConnectTimeout=%d" % connect_timeout,
                "-l", self.user, self.address, "--"] + list(cmd)

    def ssh(self, *cmd, timeout=15, connect_timeout=3):
        """Run a remote command (bounded); CompletedProcess (text)."""
        return subprocess.run(self.ssh_argv(*cmd, connect_timeout=connect_timeout),
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def down(self, how="link"):
        """Make the host unreachable: "link" = eth0 down (timeouts),
        "kill" = kill sshd (connection refused)."""
        if how == "link":
            self.ns.link_down()
        elif how == "kill":
            self._kill_sshd()
        else:
            raise ValueError(how)

    def up(self):
        """Undo down(): link up and sshd running again."""
        self.ns.link_up()
        if self.proc is None or self.proc.poll() is not None:
            self._start_sshd()

    def _kill_sshd(self):
        kill_group(self.proc)

    def stop(self):
        if self.host is not None:
            self.host.kill_all()   # sshd and any session it spawned
            self.host = None
        self._kill_sshd()
        self.proc = None
        self.release_namespace()
        shutil.rmtree(self.dir, ignore_errors=True)
