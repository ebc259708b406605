"""OpenIPMI ``ipmi_sim`` BMCs on loopback, with a file-backed chassis.

Why: hasf's IPMI fence agents must be tested against a real IPMI 2.0
(lanplus) endpoint, including a BMC that lies.  Each ``IpmiSim`` gets its
own temp dir, a free UDP port on 127.0.0.1, user ``admin`` with a
configurable password, and a chassis_control program (a small Python
script, no shell) keeping the power state in ``<tmp>/power`` ("0"/"1").

* ``power`` property reads/writes that file (True = on).
* ``lying`` (constructor arg or property): "set power 0" is acknowledged
  but the state stays on - a BMC that lies.
* ``calls()``: every chassis_control invocation, e.g. ``["set power 0"]``.
* ``ipmitool(*cmd)``: run ``ipmitool -I lanplus -C 3`` against it (password
  via IPMI_PASSWORD / -E, never on the command line).

Config facts (fencing.md section 4): the .emu must end with
``mc_enable 0x20``; chassis_control is called as ``PROG DEV get power``
(prints ``power:0|1``), ``PROG DEV set power 0|1``, ``PROG DEV set reset 1``.
Note ipmi_sim, unlike real BMCs, accepts ``power cycle`` when off.
Start-up (until ipmitool answers) measured ~0.15 s.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile

from support.service import Service, kill_group
from support.waiting import wait_until

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

EMU = """\
mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02
mc_enable 0x20
"""

LAN_CONF = """\
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
  chassis_control "%(prog)s %(state)s"
  user 2 true "%(user)s" "%(password)s" admin 10 none md2 md5 straight
"""


def _free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class IpmiSim(Service):
    """Context manager running one ipmi_sim BMC on 127.0.0.1:``port``."""

    def __init__(self, user="admin", password="secret", power=True, lying=False,
                 timeout=10):
        for value in (user, password):
            if not value or any(c in value for c in "\"\\ \t\n"):
                raise ValueError("user/password must be non-empty without quotes/blanks")
        if len(password) > 20:
            raise ValueError("IPMI 2.0 passwords are at most 20 bytes")
        self.user = user
        self.password = password
        self.timeout = timeout
        self.dir = tempfile.mkdtemp(prefix="hasf-ipmi-")
        self.state_file = os.path.join(self.dir, "power")
        self.prog = os.path.join(self.dir, "chassis_control")
        self.proc = None
        self.port = None
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

    # -- lifecycle ---------------------------------------------------------------
    def start(self):
        with open(self.prog, "w") as f:
            f.write(CHASSIS_PROG % {"python": sys.executable if os.path.isabs(
                sys.executable) else "/usr/bin/python3"})
        os.chmod(self.prog, 0o755)
        with open(os.path.join(self.dir, "node.emu"), "w") as f:
            f.write(EMU)
        os.makedirs(os.path.join(self.dir, "state"), exist_ok=True)
        last = None
        for _attempt in range(5):
            self.port = _free_udp_port()
            with open(os.path.join(self.dir, "lan.conf"), "w") as f:
                f.write(LAN_CONF % {"port": self.port, "prog": self.prog,
                                    "state": self.state_file, "user": self.user,
                                    "password": self.password})
            log = open(os.path.join(self.dir, "ipmi_sim.log"), "ab")
            self.proc = subprocess.Popen(
                ["ipmi_sim", "-c", os.path.join(self.dir, "lan.conf"),
                 "-f", os.path.join(self.dir, "node.emu"),
                 "-s", os.path.join(self.dir, "state"), "-n"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=self.dir)
            log.close()
            try:
                wait_until(self._answers, self.timeout, 0.05, "ipmi_sim on port %d" % self.port)
                return self
            except (AssertionError, RuntimeError) as exc:  # port raced away: retry
                last = exc
                self._kill()
        raise RuntimeError("ipmi_sim did not come up: %s" % last)

    def _answers(self):
        if self.proc.poll() is not None:
            raise RuntimeError("ipmi_sim exited rc=%s" % self.proc.returncode)
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

    def _kill(self):
        kill_group(self.proc)
        self.proc = None

    def stop(self):
        self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)
