"""The demonstration STONITH device: software fencing over ssh.  NOT FOR PRODUCTION.

For clusters without a power switch (a demo, a lab): "off" logs in to the
node with ssh and runs a command that takes it down at once (default: the
kernel's sysrq poweroff; for reboot the sysrq reboot).

It fails closed.  Software cannot read a machine's power state: a node that
does not answer may be off, or cut off by a network partition while it keeps
writing to shared storage -- the split-brain fencing exists to prevent.  So
"unreachable" never means "off" by itself.  A node counts as off only when
THIS device, in this run, sent the power command to the node over a session
that authenticated (ssh's own "Sending command" record proves the request
left), and afterwards either saw it go (no answer) or come back with a new
boot id.  "This run" spans fenced's attempts of one reboot request: the
attempt that sent a reboot records it in a root-only directory (record_dir,
act_record.py), and the next attempt -- a new process -- takes it up for a
bounded time, so a reboot that took effect after its attempt gave up is
not failed closed a second time.  A node that is unreachable before the act -- "already off" to a
naive device -- is a failure saying this device cannot verify power.  After a
reboot it counts as on only when it answers with a different boot id.  A
node that is hung but still routable, or an sshd that dies while the kernel
still writes, defeat this device: that is why it is not for production
(`hasf-cib verify` warns about every device like it).

ssh runs with BatchMode=yes (no password prompts; keys only) and
StrictHostKeyChecking=yes against a known_hosts file: an unknown or changed
host key is an error, never "unreachable".  The remote command runs in the
remote login shell (that is how ssh works); locally there is no shell.
"""

from hasf import runner
from hasf.stonith import fence_agent, glue
from hasf.stonith.act_record import ActRecords
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
    Param("record_dir", shortdesc="Directory (root-only) where the device records the reboot "
          "commands it sent, so that fenced's next attempt can finish verifying one",
          default="/run/hasf/fence_hasf_demo", metavar="path"),
)


#: what ssh -v prints once the remote command request has left (OpenSSH clientloop)
SENT_MARK = "debug1: Sending command:"
CANNOT_VERIFY = ("software fencing over ssh cannot verify power: an unreachable node may be "
                 "partitioned, not off")


class DemoDevice(Device):
    """ssh fencing that counts only what it did itself (see the module docstring)."""

    restarts_by_itself = True

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
                     "-p", str(opts.ssh_port), "-l", opts.username]
        if opts.identity_file:
            self.base += ["-i", opts.identity_file, "-o", "IdentitiesOnly=yes"]
        if opts.known_hosts_file:
            self.base += ["-o", "UserKnownHostsFile=%s" % opts.known_hosts_file,
                          "-o", "GlobalKnownHostsFile=/dev/null"]
        self.boot_ids = {}      # target -> boot id it answered with in this run
        self.acted = {}         # target -> boot id it had when we sent the power command
        self.on_requested = set()
        # an earlier attempt's act counts for two power_timeouts: fenced retries at once
        self.records = ActRecords(opts.record_dir, 2 * opts.power_timeout + self.timeout, log)

    def _ssh(self, target, command, deadline, timeout, level="ERROR"):
        argv = self.base + ["-o", "LogLevel=%s" % level, "--", target, command]
        try:
            return runner.run(argv, deadline=deadline, timeout=timeout, log=self.log)
        except (runner.CommandNotFound, runner.CommandSpawnFailed) as exc:
            raise DeviceError(str(exc)) from None  # EAGAIN from ssh is retried, not "internal"

    @staticmethod
    def _unreachable(result):
        text = result.stderr.lower()
        return result.rc == 255 and any(word in text for word in UNREACHABLE)

    def status(self, target, deadline):
        try:
            result = self._ssh(target, self.opts.boot_id_command, deadline, self.timeout + 2)
        except runner.CommandTimeout:
            # connected but no answer: a hung node is not a node that is off
            raise DeviceError("ssh to %s: no answer in time" % target) from None
        if result.rc == 255:
            if not self._unreachable(result):
                raise DeviceError("ssh to %s failed (not a sign of power off): %s"
                                  % (target, result.summary()))
            if target in self.acted:
                return OFF      # it went away after our power command reached it
            raise DeviceError("%s is unreachable and this device did not power it off: %s"
                              % (target, CANNOT_VERIFY))
        if result.rc != 0:
            raise DeviceError("boot id command on %s failed: %s" % (target, result.summary()))
        boot_id = result.stdout.strip()
        if not boot_id:
            raise DeviceError("boot id command on %s printed nothing" % target)
        self.boot_ids[target] = boot_id
        old = self.acted.get(target)
        if old is None:
            return ON
        if boot_id == old:
            if target in self.on_requested:
                raise DeviceError("%s answers with its old boot id: not rebooted" % target)
            return ON           # our command has not taken it down yet
        # a new boot id: it went down and came back -- off was reached in between
        return ON if target in self.on_requested else OFF

    def power_off(self, target, deadline, reboot=False):
        command = self.opts.reboot_command if reboot else self.opts.off_command
        before = self.boot_ids.get(target)
        if before is None:
            # the engine reads status first; without an answer from the node there is no act
            raise DeviceError("%s has not answered in this run: %s" % (target, CANNOT_VERIFY))
        self.log.info("running %s command on %s" % ("reboot" if reboot else "off", target))
        try:
            # ServerAlive ends a session whose node died (~3 s); the bound is a backstop
            result = self._ssh(target, command, deadline, self.timeout + 5, level="DEBUG1")
            said = result.stderr
        except runner.CommandTimeout as exc:
            # a session to a node that went down can outlive the bound (measured in the
            # lab, under TCG): what ssh recorded before it was killed still tells
            # whether the command left
            if SENT_MARK not in exc.stderr_so_far:
                raise DeviceError("ssh to %s did not finish; whether the power command was "
                                  "sent is unknown: %s" % (target, CANNOT_VERIFY)) from None
            self.log.info("the %s command left for %s (its ssh session did not end: the "
                          "node went down under it)" % ("reboot" if reboot else "off", target))
            self._acted(target, before, reboot)
            return
        if SENT_MARK not in said:
            raise DeviceError("the %s command did not reach %s: %s" % (
                "reboot" if reboot else "off", target, _last_error(result)))
        self._acted(target, before, reboot)

    def _acted(self, target, before, reboot):
        self.acted[target] = before
        if reboot:
            self.records.remember(target, before)

    def resume_reboot(self, target):
        before = self.records.unfinished(target)
        if before is not None and target not in self.acted:
            self.log.info("taking up the reboot command an earlier attempt sent to %s (it then "
                          "ran boot %s)" % (target, before))
            self.acted[target] = before

    def reboot_verified(self, target):
        self.records.forget(target)

    def power_on(self, target, deadline):
        # software cannot switch a machine on; after a reboot command it comes
        # back by itself, and only a new boot id proves it rebooted
        if target in self.acted:
            self.on_requested.add(target)

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


def _last_error(result):
    """The last line ssh printed that is not its own debug chatter."""
    lines = [line for line in result.stderr.splitlines()
             if line.strip() and not line.startswith("debug")]
    return "ssh exited %d: %s" % (result.rc, lines[-1] if lines else "no output")


DEFINITION = Definition(
    "demo", "Demonstration software STONITH over ssh (NOT for production)",
    "fence_hasf_demo is the software/demonstration STONITH device for clusters without a power "
    "switch. IT IS NOT FOR PRODUCTION: it can only fence a node that still answers ssh. It logs "
    "in with ssh (BatchMode, host keys checked) and runs a command that takes the node down at "
    "once (default: sysrq poweroff, or sysrq reboot for reboot). It cannot read power: an "
    "unreachable node is a failure, never off; success only after this device sent the power "
    "command to a node that answered and then saw it go, or (reboot) come back with a new "
    "boot id.",
    PARAMS, DemoDevice, vendor_url="https://www.openssh.com",
    glue_info={"devid": "hasf demo STONITH device (not for production)",
               "devname": "hasf software STONITH over ssh (demonstration only)",
               "devdescr": "Software fencing over ssh for demonstrations. NOT FOR PRODUCTION: "
                           "it can only fence nodes that still answer ssh.",
               "devurl": "https://www.openssh.com"})

fence_main = fence_agent.main_for(DEFINITION)
glue_main = glue.main_for(DEFINITION)
