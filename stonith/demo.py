"""The demonstration STONITH device: software fencing over ssh.  NOT FOR PRODUCTION.

For clusters without a power switch (a demo, a lab): "off" logs in to the
node with ssh and runs a command that takes it down at once (default: the
kernel's sysrq poweroff; for reboot the sysrq reboot).  A node counts as off
only once it is verified unreachable (connection refused / timed out / no
route), and after a reboot it counts as on only when it answers again with
a different boot id.  A node that is hung but still routable, or an sshd
that stops answering while the kernel still writes to shared storage, defeat
this device: that is why it is not for production.

ssh runs with BatchMode=yes (no password prompts; keys only) and
StrictHostKeyChecking=yes against a known_hosts file: an unknown or changed
host key is an error, never "unreachable".  The remote command runs in the
remote login shell (that is how ssh works); locally there is no shell.
"""

from hasf import runner
from hasf.stonith import fence_agent, glue
from hasf.stonith.definition import Definition
from hasf.stonith.engine import OFF, ON, Device
from hasf.stonith.errors import ConfigError, DeviceError
from hasf.stonith.params import INTEGER, Param
from hasf.stonith.targets import TargetMap

UNREACHABLE = ("connection refused", "connection timed out", "no route to host",
               "network is unreachable", "operation timed out", "host is down")

PARAMS = (
    Param("host_map", shortdesc="Node to ssh address map: node1:addr1;node2:addr2",
          aliases=("hostlist",), glue_name="hostlist", required=True),
    Param("username", shortdesc="Remote user", short="l", aliases=("login",), default="root",
          metavar="name"),
    Param("ssh_port", INTEGER, 22, "ssh port on the nodes"),
    Param("identity_file", shortdesc="ssh private key", short="k", metavar="file"),
    Param("known_hosts_file", shortdesc="known_hosts file with the nodes' host keys",
          metavar="file"),
    Param("ssh_path", shortdesc="Path to ssh", default="/usr/bin/ssh", metavar="path"),
    Param("off_command", shortdesc="Remote command that powers the node off immediately",
          default="echo o > /proc/sysrq-trigger", metavar="command"),
    Param("reboot_command", shortdesc="Remote command that reboots the node immediately",
          default="echo b > /proc/sysrq-trigger", metavar="command"),
    Param("boot_id_command", shortdesc="Remote command printing an id that changes per boot",
          default="cat /proc/sys/kernel/random/boot_id", metavar="command"),
)


class DemoDevice(Device):
    def __init__(self, opts, password, log, validate_only=False):
        self.log = log
        self.map = TargetMap.parse(opts.host_map)
        if not self.map:
            raise ConfigError("host_map is required (node:address pairs)")
        self.opts = opts
        self.timeout = opts.login_timeout
        self.base = [opts.ssh_path, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                     "-o", "ConnectTimeout=%d" % max(1, int(round(self.timeout))),
                     "-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=2",
                     "-o", "LogLevel=ERROR", "-p", str(opts.ssh_port), "-l", opts.username]
        if opts.identity_file:
            self.base += ["-i", opts.identity_file, "-o", "IdentitiesOnly=yes"]
        if opts.known_hosts_file:
            self.base += ["-o", "UserKnownHostsFile=%s" % opts.known_hosts_file,
                          "-o", "GlobalKnownHostsFile=/dev/null"]
        self.boot_ids = {}        # target -> boot id seen before it went down
        self.expect_new_boot = {}

    def _ssh(self, target, command, deadline, timeout):
        argv = self.base + ["--", target, command]
        try:
            return runner.run(argv, deadline=deadline, timeout=timeout, log=self.log)
        except runner.CommandNotFound as exc:
            raise DeviceError(str(exc)) from None

    def status(self, target, deadline):
        try:
            result = self._ssh(target, self.opts.boot_id_command, deadline, self.timeout + 2)
        except runner.CommandTimeout:
            # connected but no answer: a hung node is not a node that is off
            raise DeviceError("ssh to %s: no answer in time" % target) from None
        if result.rc == 255:
            text = result.stderr.lower()
            if any(word in text for word in UNREACHABLE):
                return OFF
            raise DeviceError("ssh to %s failed (not a sign of power off): %s"
                              % (target, result.summary()))
        boot_id = result.stdout.strip()
        old = self.expect_new_boot.get(target)
        if old is not None and boot_id == old:
            raise DeviceError("%s answers with its old boot id: not rebooted yet" % target)
        self.boot_ids[target] = boot_id
        return ON

    def power_off(self, target, deadline, reboot=False):
        command = self.opts.reboot_command if reboot else self.opts.off_command
        self.log.info("running %s command on %s" % ("reboot" if reboot else "off", target))
        try:
            result = self._ssh(target, command, deadline, self.timeout + 2)
        except runner.CommandTimeout:
            return    # the node went down under the session: the status poll decides
        text = result.stderr.lower()
        if result.rc == 255 and ("verification failed" in text or "permission denied" in text):
            raise DeviceError("ssh to %s: %s" % (target, result.summary()))

    def power_on(self, target, deadline):
        # software cannot switch a machine on; after a reboot command it comes
        # back by itself, and only a new boot id proves it rebooted
        if target in self.boot_ids:
            self.expect_new_boot[target] = self.boot_ids[target]

    def list_targets(self, deadline):
        return [(target, node) for node, target in self.map.items()]

    def health(self, deadline):
        problems = []
        for node, target in self.map.items():
            try:
                self.status(target, deadline)
            except DeviceError as exc:
                problems.append("%s: %s" % (node, exc))
        if problems:
            raise DeviceError("; ".join(problems))



DEFINITION = Definition(
    "demo", "Demonstration software STONITH over ssh (NOT for production)",
    "fence_hasf_demo is the software/demonstration STONITH device for clusters without a power "
    "switch. IT IS NOT FOR PRODUCTION: it can only fence a node that still answers ssh. It logs "
    "in with ssh (BatchMode, host keys checked) and runs a command that takes the node down at "
    "once (default: sysrq poweroff, or sysrq reboot for reboot); success only once the node is "
    "verified unreachable, and for reboot once it answers again with a new boot id.",
    PARAMS, DemoDevice, vendor_url="https://www.openssh.com",
    glue_info={"devid": "hasf demo STONITH device (not for production)",
               "devname": "hasf software STONITH over ssh (demonstration only)",
               "devdescr": "Software fencing over ssh for demonstrations. NOT FOR PRODUCTION: "
                           "it can only fence nodes that still answer ssh.",
               "devurl": "https://www.openssh.com"})

fence_main = fence_agent.main_for(DEFINITION)
glue_main = glue.main_for(DEFINITION)
