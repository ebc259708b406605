"""OpenIPMI ``ipmi_sim`` BMCs on the host's loopback: real IPMI 2.0 power for the lab.

Why: the seed's crash test needs STONITH that really cuts a node's power and
a fence agent that talks to a real BMC, and hasf's IPMI fence agent must be
tried against a real IPMI 2.0 (lanplus) endpoint, including one that lies.
ipmi_sim is one; ``NodeBmc`` makes it the power switch of one node guest:
its ``startcmd`` execs that node's qemu (power on), ``chassis power off``
ends that qemu (ipmi_sim asks the guest over qemu's external-BMC channel,
then SIGTERM after ``poweroff_wait``, SIGKILL after ``kill_wait``), and
``power status`` is whether that qemu lives.  The guest reaches the BMC as
10.0.2.2:PORT through qemu's user-mode network.

``FileBmc`` has a file for a chassis (power state in a file, every
chassis_control call logged, optionally lying about power off): the lab's
fence_hasf_ipmi step and the fence agents' tests use it.  ``IpmiSim`` is the
part both share (config, start with a free port, ipmitool with the password
in the environment, never on a command line).

Config facts (fencing.md section 4): the .emu must end with
``mc_enable 0x20`` or nothing listens; one admin user.  Start-up (until
ipmitool answers) ~0.15 s.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from lab.process import Service, kill_group, kill_pid, pid_alive, wait_until
from lab.qemu import free_tcp_port, free_udp_port

EMU = """\
mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02
mc_enable 0x20
"""

LAN_HEAD = """\
name "hasfsim"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 %(port)d
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
"""
USER_LINE = '  user 2 true "%(user)s" "%(password)s" admin 10 none md2 md5 straight\n'

# The start script ipmi_sim runs on power on: log the start, then exec qemu, so
# the process ipmi_sim watches (and kills on power off) is qemu itself.
START_SCRIPT = r'''#!%(python)s -I
"""startcmd of a hasf lab BMC: record the power-on, then become the node's qemu."""
import json, os, time
with open(%(log)r, "a") as log:
    log.write(json.dumps({"event": "on", "pid": os.getpid(), "mono": time.monotonic(),
                          "wall": time.time()}) + "\n")
argv = json.load(open(%(argv)r))
os.execvp(argv[0], argv)
'''


def _script_python():
    """The interpreter for the scripts ipmi_sim runs (chassis_control, startcmd)."""
    return sys.executable if os.path.isabs(sys.executable) else "/usr/bin/python3"


class BmcError(RuntimeError):
    """An ipmi_sim BMC did not start or does not answer."""


class IpmiSim(Service):
    """One ipmi_sim on 127.0.0.1:``port`` (a free UDP port unless given)."""

    prefix = "hasf-ipmi-"

    def __init__(self, user="admin", password="secret", port=None, timeout=10, directory=None):
        for value in (user, password):
            if not value or any(c in value for c in "\"\\ \t\n"):
                raise ValueError("user/password must be non-empty without quotes/blanks")
        if len(password) > 20:
            raise ValueError("IPMI 2.0 passwords are at most 20 bytes")
        self.user = user
        self.password = password
        self.timeout = timeout
        self.fixed_port = port
        self.port = None
        self.proc = None
        self._own_dir = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix=self.prefix)
        os.makedirs(self.dir, exist_ok=True)

    def conf_lines(self):
        """What a subclass adds to lan.conf (chassis_control, startcmd, ...)."""
        return ""

    def prepare(self):
        """Write what conf_lines() names, before ipmi_sim starts."""

    def lifetime(self):
        """Seconds after which ipmi_sim (and what it started) is killed even if the
        lab process died without stop(); None: only stop() ends it."""
        return None

    def start(self):
        self.prepare()
        with open(os.path.join(self.dir, "node.emu"), "w") as f:
            f.write(EMU)
        os.makedirs(os.path.join(self.dir, "state"), exist_ok=True)
        last = None
        for _attempt in range(1 if self.fixed_port else 5):
            self.port = self.fixed_port or free_udp_port()
            with open(os.path.join(self.dir, "lan.conf"), "w") as f:
                f.write(LAN_HEAD % {"port": self.port} + self.conf_lines()
                        + USER_LINE % {"user": self.user, "password": self.password})
            argv = ["ipmi_sim", "-c", os.path.join(self.dir, "lan.conf"),
                    "-f", os.path.join(self.dir, "node.emu"),
                    "-s", os.path.join(self.dir, "state"), "-n"]
            if self.lifetime():
                # timeout(1) kills its whole process group (ipmi_sim and the qemu it runs)
                argv = ["timeout", "-s", "KILL", str(int(self.lifetime()))] + argv
            with open(os.path.join(self.dir, "ipmi_sim.log"), "ab") as log:
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True,
                                             cwd=self.dir)
            try:
                wait_until(self._answers, self.timeout, 0.05, "ipmi_sim on port %d" % self.port)
                return self
            except (AssertionError, RuntimeError) as exc:  # port raced away: retry
                last = exc
                self._kill()
        raise BmcError("ipmi_sim did not come up: %s" % last)

    def _answers(self):
        if self.proc.poll() is not None:
            raise BmcError("ipmi_sim exited rc=%s" % self.proc.returncode)
        return self.ipmitool("mc", "info", timeout=3, retries=1).returncode == 0

    def ipmitool_argv(self, *cmd, retries=2, timeout_s=1):
        """argv for ipmitool lanplus against this BMC (password via -E)."""
        return ["ipmitool", "-I", "lanplus", "-C", "3", "-H", "127.0.0.1",
                "-p", str(self.port), "-U", self.user, "-E",
                "-N", str(timeout_s), "-R", str(retries)] + list(cmd)

    def ipmitool(self, *cmd, password=None, timeout=10, retries=2):
        """Run ipmitool against this BMC (bounded); CompletedProcess (text)."""
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
               "IPMI_PASSWORD": self.password if password is None else password}
        return subprocess.run(self.ipmitool_argv(*cmd, retries=retries), env=env,
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def power_status(self):
        """The BMC's own answer to ``chassis power status``: True (on), False (off)."""
        result = self.ipmitool("chassis", "power", "status")
        if result.returncode != 0:
            raise BmcError("chassis power status failed: %s" % result.stderr.strip())
        return result.stdout.strip().endswith("on")

    def _kill(self):
        kill_group(self.proc)
        self.proc = None

    def stop(self):
        self._kill()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


CHASSIS_PROG = r'''#!%(python)s -I
"""chassis_control for ipmi_sim: power state lives in the file argv[1]."""
import os, sys
state, op, args = sys.argv[1], sys.argv[2], sys.argv[3:]
base = os.path.dirname(state)
with open(os.path.join(base, "calls.log"), "a") as log:
    log.write(" ".join([op] + args) + "\n")

def read():
    try:
        with open(state) as f:
            return f.read().strip() or "0"
    except FileNotFoundError:
        return "0"

def write(value):
    tmp = state + ".tmp"
    with open(tmp, "w") as f:
        f.write(value + "\n")
    os.replace(tmp, state)

lying = os.path.exists(os.path.join(base, "lying"))
if op == "get":
    for item in args:
        if item == "power":
            print("power:%%s" %% read())
        elif item == "boot":
            print("boot:none")
elif op == "set":
    pairs = list(zip(args[0::2], args[1::2]))
    for item, value in pairs:
        if item == "power":
            if value == "0" and lying:
                continue
            write("1" if value != "0" else "0")
        # "reset": the chassis stays in its current power state
sys.exit(0)
'''

CHASSIS_LINE = '  chassis_control "%(prog)s %(state)s"\n'


class FileBmc(IpmiSim):
    """A BMC whose chassis is a file: ``power`` ("0"/"1" in ``<dir>/power``),
    a chassis_control program (CHASSIS_PROG) that logs every call and can lie.

    For fence agents against a BMC with no machine behind it: the lab's
    fence_hasf_ipmi step and the tests.  ``lying``: "set power 0" is
    acknowledged but the power stays on.  ``calls()``: every chassis_control
    invocation, e.g. ``["set power 0"]``.  chassis_control is called as
    ``PROG STATE get power`` (prints ``power:0|1``), ``PROG STATE set power
    0|1``, ``PROG STATE set reset 1``.  Note ipmi_sim, unlike real BMCs,
    accepts ``power cycle`` when off.
    """

    def __init__(self, user="admin", password="secret", power=True, lying=False, timeout=10):
        super().__init__(user=user, password=password, timeout=timeout)
        self.state_file = os.path.join(self.dir, "power")
        self.prog = os.path.join(self.dir, "chassis_control")
        self.power = power
        self.lying = lying

    # -- state -----------------------------------------------------------------
    @property
    def power(self):
        """True when the simulated chassis is on."""
        try:
            with open(self.state_file) as f:
                return f.read().strip() == "1"
        except FileNotFoundError:
            return False

    @power.setter
    def power(self, on):
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("1\n" if on else "0\n")
        os.replace(tmp, self.state_file)

    @property
    def lying(self):
        return os.path.exists(os.path.join(self.dir, "lying"))

    @lying.setter
    def lying(self, value):
        flag = os.path.join(self.dir, "lying")
        if value:
            open(flag, "w").close()
        elif os.path.exists(flag):
            os.unlink(flag)

    def calls(self):
        """chassis_control invocations so far (e.g. "set power 0")."""
        try:
            with open(os.path.join(self.dir, "calls.log")) as f:
                return [line.strip() for line in f if line.strip()]
        except FileNotFoundError:
            return []

    # -- lan.conf ------------------------------------------------------------------
    def conf_lines(self):
        return CHASSIS_LINE % {"prog": self.prog, "state": self.state_file}

    def prepare(self):
        with open(self.prog, "w") as f:
            f.write(CHASSIS_PROG % {"python": _script_python()})
        os.chmod(self.prog, 0o755)


class NodeBmc(IpmiSim):
    """The BMC of one lab node: power on runs the node's qemu, power off ends it.

    ``qemu_argv`` is the node's qemu command line (it must connect its
    external BMC to ``serial_port``); the qemu writes its pid to
    ``pidfile``.  ``power_log()`` lists the power-ons the start script
    recorded; ``qemu_pid()`` is the live qemu, or None (power off).
    """

    prefix = "hasf-bmc-"

    def __init__(self, name, directory, qemu_argv=None, port=None, password="lab-secret",
                 lifetime=3600, power_on=True):
        super().__init__(user="admin", password=password, port=port, directory=directory)
        self.name = name
        self.serial_port = free_tcp_port()
        self.qemu_argv = qemu_argv
        self.pidfile = os.path.join(self.dir, "qemu.pid")
        self.power_on_at_start = power_on
        self._lifetime = lifetime
        self.script = os.path.join(self.dir, "power-on")
        self.log = os.path.join(self.dir, "power.log")

    def lifetime(self):
        return self._lifetime

    def conf_lines(self):
        return ('  serial 15 127.0.0.1 %d codec VM\n' % self.serial_port
                + '  startcmd "%s"\n' % self.script
                + '  startnow %s\n' % ("true" if self.power_on_at_start else "false")
                + '  poweroff_wait 1\n  kill_wait 2\n')

    def prepare(self):
        if self.qemu_argv is None:
            raise BmcError("NodeBmc %s: no qemu_argv" % self.name)
        for c in self.script:
            if c in "\" \t\n\\":
                raise BmcError("BMC dir must not contain blanks or quotes: %r" % self.dir)
        argv_file = os.path.join(self.dir, "qemu.argv.json")
        with open(argv_file, "w") as f:
            json.dump(list(self.qemu_argv), f)
        with open(self.script, "w") as f:
            f.write(START_SCRIPT % {"python": _script_python(), "log": self.log,
                                    "argv": argv_file})
        os.chmod(self.script, 0o755)

    def power_log(self):
        """The power-ons recorded by the start script: dicts with pid, mono, wall."""
        try:
            with open(self.log) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def qemu_pid(self):
        """The pid of the node's live qemu, or None: the host's own view of the power."""
        starts = self.power_log()
        if not starts:
            return None
        pid = starts[-1]["pid"]
        return pid if pid_alive(pid) else None

    def wait_power(self, on, timeout=30):
        """Wait until the node's qemu lives (on) or is gone (off); the time it was seen."""
        wait_until(lambda: (self.qemu_pid() is not None) == on, timeout, 0.05,
                   "node %s power %s" % (self.name, "on" if on else "off"))
        return time.monotonic()

    def stop(self):
        pid = self.qemu_pid()
        super().stop()
        if pid is not None:
            kill_pid(pid)
