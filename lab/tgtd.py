"""tgtd (the tgt iSCSI target daemon) on loopback: the SAN the lab's agents drive.

Why: hasf's iSCSITarget/iSCSILogicalUnit agents must run against a real
tgtd (the lab's SAN steps, the storage path, their tests), and an iSCSI
initiator (libiscsi's iscsi-ls / iscsi-inq in user space, open-iscsi in a
guest) must be able to log in to what they export.  Several runs may
share this machine, so each `Tgtd` takes its own control port (tgtd -C N:
socket /run/tgtd/socket.N, whose .lock tgtd holds while it lives) and its
own iSCSI portal 127.0.0.1:<free port>.  Nothing listens beyond loopback.
"""

import fcntl
import os
import random
import subprocess

from lab.process import Service, kill_group, wait_until
from lab.qemu import free_tcp_port

SOCKET_DIR = "/run/tgtd"


def _control_port_free(port):
    """No tgtd holds socket.<port>.lock (probe with a lock we release at once)."""
    path = os.path.join(SOCKET_DIR, "socket.%d.lock" % port)
    if not os.path.exists(path):
        return True
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


class Tgtd(Service):
    """A foreground tgtd with a private control port and a loopback portal."""

    def __init__(self, timeout=15, control_port=None):
        """control_port: a fixed one (0 = the tgt service's, which tools without a
        -C option such as ClusterLabs' agents use); by default a free random one."""
        self.timeout = timeout
        self.wanted_port = control_port
        self.control_port = None
        self.portal_port = None
        self.proc = None

    @property
    def portal(self):
        return "127.0.0.1:%d" % self.portal_port

    def url(self, iqn, lun=None):
        """libiscsi URL of a target (or one of its LUNs)."""
        return "iscsi://%s/%s%s" % (self.portal, iqn, "" if lun is None else "/%d" % lun)

    def start(self):
        os.makedirs(SOCKET_DIR, exist_ok=True)
        if self.wanted_port is not None:
            if not _control_port_free(self.wanted_port):
                raise RuntimeError("a tgtd already runs on control port %d" % self.wanted_port)
            candidates = [self.wanted_port]
        else:
            candidates = [p for p in random.sample(range(1000, 30000), 50)
                          if _control_port_free(p)]
        self.control_port = candidates[0]
        self.portal_port = free_tcp_port()
        self.proc = subprocess.Popen(
            ["tgtd", "-f", "-C", str(self.control_port), "--iscsi",
             "portal=%s" % self.portal], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_until(self._answers, self.timeout, 0.05, "tgtd on control port %d"
                   % self.control_port)
        return self

    def _answers(self):
        if self.proc.poll() is not None:
            raise RuntimeError("tgtd exited rc=%s" % self.proc.returncode)
        return self.tgtadm("--op", "show", "--mode", "target").returncode == 0

    def tgtadm(self, *args, timeout=10):
        return subprocess.run(["tgtadm", "-C", str(self.control_port), "--lld", "iscsi"]
                              + list(args), capture_output=True, text=True, timeout=timeout)

    def show(self):
        return self.tgtadm("--op", "show", "--mode", "target").stdout

    def stop(self):
        kill_group(self.proc)
        self.proc = None
        if self.control_port is not None:
            for suffix in ("", ".lock"):
                try:
                    os.unlink(os.path.join(SOCKET_DIR, "socket.%d%s" % (self.control_port,
                                                                        suffix)))
                except FileNotFoundError:
                    pass
