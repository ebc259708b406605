"""One lab cluster node: a Debian 12 guest under qemu TCG that keeps running, and its control channel.

Why: the seed's Step Seven needs nodes that stay up as cluster members, get
powered off and on by their BMC, and boot back into the cluster by
themselves.  A ``Node`` is the static half of that: its persistent qcow2
overlay on the one cached image (lab/image.py), its 9p share (node.json,
the node runner lab/noderunner.py, the hasf install tree, files to lay
down), and the qemu command line its BMC (lab/bmc.py) runs on power on:
direct kernel boot, 1 vCPU, user-mode net with ``hostfwd`` of the guest's
sshd to 127.0.0.1:``ssh_port`` (the control channel; the host's 127.0.0.1
is 10.0.2.2 in the guest, which is how the fence agent reaches the BMCs),
a connectionless UDP socket link to the peer for corosync (a TCP socket
netdev's ``connect=`` side never reconnects when the peer reboots), and
qemu's external BMC (``ipmi-bmc-extern`` + ``isa-ipmi-kcs``) connected to
the node's ipmi_sim.

``ssh(argv)`` runs one argv in the node (quoted with shlex for the remote
shell sshd always uses), bounded, with the lab's own key; host keys are not
checked (the node is on loopback and gets new ones with every image).
"""

import json
import os
import shlex
import subprocess
from xml.sax.saxutils import escape, quoteattr

from lab.image import GUEST_INIT, SHARE_TAG, CONTROL, USER_NET
from lab.process import tail, wait_until
from lab.qemu import free_tcp_port, qemu_value, unique_mac

NODE_RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "noderunner.py")


DOMAIN_XML = """\
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
<name>%(name)s</name>
<memory unit='MiB'>%(memory)d</memory>
<vcpu>%(cpus)d</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type><kernel>%(kernel)s</kernel>
<initrd>%(initrd)s</initrd><cmdline>%(append)s</cmdline></os>
<on_poweroff>destroy</on_poweroff><on_reboot>%(reboot)s</on_reboot><on_crash>destroy</on_crash>
<seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>
<devices>
<emulator>/usr/bin/qemu-system-x86_64</emulator>
<disk type='file' device='disk'><driver name='qemu' type='qcow2' cache='writeback'/>
<source file=%(overlay)s/><target dev='vda' bus='virtio'/></disk>
%(disks)s<filesystem type='mount' accessmode='passthrough'><source dir=%(share)s/>
<target dir=%(tag)s/></filesystem>
<interface type='udp'><mac address=%(lan_mac)s/><source address='127.0.0.1' port='%(peer)d'>
<local address='127.0.0.1' port='%(local)d'/></source><model type='virtio'/></interface>
<serial type='file'><source path=%(console)s append='on'/><target port='0'/></serial>
<memballoon model='none'/>
</devices>
<qemu:commandline><qemu:arg value='-netdev'/><qemu:arg value=%(netdev)s/>
<qemu:arg value='-device'/><qemu:arg value=%(nic)s/></qemu:commandline>
</domain>
"""


class NodeError(RuntimeError):
    """A node did not come up or its control channel failed."""


class Node:
    """The static part of one node guest (see the module docstring).

    name: the node's cluster name and hostname; lan_address: "ADDR/PREFIX" on
    the corosync link; lan_port / peer_port: this qemu's and the peer's UDP
    ports on 127.0.0.1 for that link; hosts: name -> address for /etc/hosts.
    """

    def __init__(self, name, directory, image, lan_address, lan_port, peer_port, hosts,
                 key, memory=1024, cpus=1, disks=(), services=(), modules=(), no_reboot=True):
        self.name = name
        self.dir = directory
        self.image = image
        self.lan_address = lan_address
        self.lan_port = lan_port
        self.peer_port = peer_port
        self.hosts = dict(hosts)
        self.key = key
        self.memory = memory
        self.cpus = cpus
        self.share = os.path.join(directory, "share")
        self.control = os.path.join(self.share, CONTROL)
        self.overlay = os.path.join(directory, "root.qcow2")
        self.console = os.path.join(directory, "console.log")
        self.ssh_port = free_tcp_port()
        self.mac = unique_mac()
        self.lan_mac = unique_mac()
        self.files = []
        #: (raw image path, serial): extra disks, vdb, vdc, ... in this order (the SAN's LUN)
        self.disks = list(disks)
        #: daemons the runner starts before the cluster stack (see lab/noderunner.py)
        self.services = list(services)
        self.modules = list(modules)
        #: a guest reboot ends qemu (power goes through the BMC); False: qemu resets and
        #: boots again by itself, as a machine does (software fencing reboots the node)
        self.no_reboot = no_reboot

    # -- preparing the disk and the share --------------------------------------------
    def prepare(self, install_tree=None, cluster=True):
        """Overlay, share, node.json and the runner; copy the hasf install tree in."""
        os.makedirs(self.control, exist_ok=True)
        os.chmod(self.share, 0o755)
        if not os.path.exists(self.overlay):
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                            self.image.root, self.overlay], check=True, capture_output=True,
                           timeout=60, stdin=subprocess.DEVNULL)
        with open(self.key + ".pub") as handle:
            self.add_file("/root/.ssh/authorized_keys", handle.read(), 0o600)
        if install_tree is not None:
            subprocess.run(["cp", "-a", "--", install_tree, os.path.join(self.share, "install")],
                           check=True, capture_output=True, timeout=120)
        with open(NODE_RUNNER) as handle:
            runner = handle.read()
        with open(os.path.join(self.control, "runner.py"), "w") as handle:
            handle.write(runner)
        config = {"hostname": self.name, "hosts": self.hosts, "cluster": cluster,
                  "nics": [dict(USER_NET, mac=self.mac),
                           {"mac": self.lan_mac, "address": self.lan_address}],
                  "files": self.files, "services": self.services, "modules": self.modules,
                  "system_users": ["libvirt-qemu"] if "libvirtd" in self.services else []}
        with open(os.path.join(self.control, "node.json"), "w") as handle:
            json.dump(config, handle, indent=1)

    def add_file(self, path, text, mode=0o644, owner=None):
        """A file the node lays down at every boot (before its daemons start)."""
        source = "files/%d" % len(self.files)
        os.makedirs(os.path.join(self.share, "files"), mode=0o700, exist_ok=True)
        with open(os.path.join(self.share, source), "w") as handle:
            handle.write(text)
        os.chmod(os.path.join(self.share, source), 0o600)
        self.files.append({"path": path, "source": source, "mode": "%o" % mode,
                           "owner": list(owner) if owner else None})

    # -- qemu ---------------------------------------------------------------------------
    def qemu_argv(self, bmc_serial_port, pidfile):
        """The node's qemu, as its BMC's start script execs it on every power on."""
        append = ("root=/dev/vda rw rootfstype=ext4 console=ttyS0,115200 panic=-1 "
                  "net.ifnames=0 init=%s" % GUEST_INIT)
        return ["qemu-system-x86_64", "-name", self.name, "-accel", "tcg", "-machine", "pc",
                "-m", str(self.memory), "-smp", str(self.cpus),
                "-nodefaults", "-no-user-config", "-display", "none",
                *(["-no-reboot"] if self.no_reboot else []),
                "-monitor", "none", "-pidfile", pidfile,
                "-chardev", "file,id=con0,append=on,path=%s" % qemu_value(self.console),
                "-serial", "chardev:con0",
                "-kernel", self.image.kernel, "-initrd", self.image.initrd, "-append", append,
                "-drive", "file=%s,if=none,id=root,format=qcow2,cache=writeback"
                % qemu_value(self.overlay),
                "-device", "virtio-blk-pci,drive=root",
                *self._disk_argv(),
                "-virtfs", "local,path=%s,mount_tag=%s,security_model=passthrough,id=share"
                % (qemu_value(self.share), SHARE_TAG),
                "-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:%d-:22" % self.ssh_port,
                "-device", "virtio-net-pci,netdev=net0,mac=%s" % self.mac,
                "-netdev", "socket,id=lan0,udp=127.0.0.1:%d,localaddr=127.0.0.1:%d"
                % (self.peer_port, self.lan_port),
                "-device", "virtio-net-pci,netdev=lan0,mac=%s" % self.lan_mac,
                "-chardev", "socket,id=ipmi0,host=127.0.0.1,port=%d,reconnect=10"
                % bmc_serial_port,
                "-device", "ipmi-bmc-extern,chardev=ipmi0,id=bmc0",
                "-device", "isa-ipmi-kcs,bmc=bmc0"]

    def domain_xml(self, domain):
        """The same machine as qemu_argv(), as a libvirt domain (lab/domain_power.py) named
        ``domain``: no BMC devices; the user-mode NIC with the ssh hostfwd goes through
        qemu:commandline (libvirt 9.0 forwards no ports for slirp)."""
        append = ("root=/dev/vda rw rootfstype=ext4 console=ttyS0,115200 panic=-1 "
                  "net.ifnames=0 init=%s" % GUEST_INIT)
        disks = "".join(
            "<disk type='file' device='disk'><driver name='qemu' type='raw' cache='writeback'/>"
            "<source file=%s/><target dev='vd%s' bus='virtio'/><serial>%s</serial></disk>\n"
            % (quoteattr(path), chr(ord("b") + i), escape(serial))
            for i, (path, serial) in enumerate(self.disks))
        values = {
            "name": escape(domain), "memory": self.memory, "cpus": self.cpus,
            "kernel": escape(self.image.kernel), "initrd": escape(self.image.initrd),
            "append": escape(append), "reboot": "destroy" if self.no_reboot else "restart",
            "overlay": quoteattr(self.overlay), "disks": disks, "share": quoteattr(self.share),
            "tag": quoteattr(SHARE_TAG), "lan_mac": quoteattr(self.lan_mac),
            "peer": self.peer_port, "local": self.lan_port, "console": quoteattr(self.console),
            "netdev": quoteattr("user,id=hasfnet0,hostfwd=tcp:127.0.0.1:%d-:22" % self.ssh_port),
            "nic": quoteattr("virtio-net-pci,netdev=hasfnet0,mac=%s,addr=0x10" % self.mac)}
        return DOMAIN_XML % values

    def _disk_argv(self):
        argv = []
        for i, (path, serial) in enumerate(self.disks):
            argv += ["-drive", "file=%s,if=none,id=disk%d,format=raw,cache=writeback"
                     % (qemu_value(path), i),
                     "-device", "virtio-blk-pci,drive=disk%d,serial=%s" % (i, serial)]
        return argv

    # -- what the node tells the host through the share ------------------------------
    def boots(self):
        """Every completed start-up: dicts with boot_id, daemon pids, ready_at (uptime)."""
        try:
            with open(os.path.join(self.control, "boots.log")) as handle:
                return [json.loads(line) for line in handle if line.strip()]
        except FileNotFoundError:
            return []

    def runner_log(self, chars=3000):
        return tail(os.path.join(self.control, "node.log"), chars)

    def console_log(self, chars=4000):
        return tail(self.console, chars)

    # -- the control channel ------------------------------------------------------------
    def ssh_argv(self, argv, connect_timeout=5):
        return ["ssh", "-i", self.key, "-p", str(self.ssh_port), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=%d" % connect_timeout,
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
                "root@127.0.0.1", "--", shlex.join(argv)]

    def ssh(self, argv, timeout=60, input=None, check=False):
        """Run argv in the node (bounded); CompletedProcess (text).  check=True raises
        NodeError with what it printed when it fails."""
        try:
            result = subprocess.run(self.ssh_argv(argv), input=input, capture_output=True,
                                    text=True, timeout=timeout,
                                    stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise NodeError("%s: %r did not finish in %ss" % (self.name, argv, timeout)) from exc
        if check and result.returncode != 0:
            raise NodeError("%s: %r rc=%d\nstdout:\n%s\nstderr:\n%s" % (
                self.name, argv, result.returncode, result.stdout[-2000:], result.stderr[-2000:]))
        return result

    def answers(self):
        """Whether the node's sshd runs a command now (one short attempt)."""
        try:
            return self.ssh(["true"], timeout=15).returncode == 0
        except NodeError:
            return False

    def wait_answers(self, timeout=180):
        wait_until(self.answers, timeout, 1.0, "%s's sshd on 127.0.0.1:%d" % (self.name,
                                                                           self.ssh_port))

    def boot_id(self):
        return self.ssh(["cat", "/proc/sys/kernel/random/boot_id"], timeout=20,
                        check=True).stdout.strip()

    def diagnostics(self):
        """What to show when the node misbehaves: the runner's log and the console's tail."""
        return "-- %s runner log:\n%s\n-- %s console tail:\n%s" % (
            self.name, self.runner_log(), self.name, self.console_log())
