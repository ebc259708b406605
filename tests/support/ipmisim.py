"""ipmi_sim BMCs with a file-backed chassis, for the fence agents' tests.

Why: hasf's IPMI fence agents must be tested against a real IPMI 2.0
(lanplus) endpoint, including a BMC that lies.  The ipmi_sim part is the
lab's (lab/bmc.py); this adds a chassis_control program (a small Python
script, no shell) keeping the power state in ``<tmp>/power`` ("0"/"1").

* ``power`` property reads/writes that file (True = on).
* ``lying`` (constructor arg or property): "set power 0" is acknowledged
  but the state stays on - a BMC that lies.
* ``calls()``: every chassis_control invocation, e.g. ``["set power 0"]``.
* ``ipmitool(*cmd)``: run ``ipmitool -I lanplus -C 3`` against it (password
  via IPMI_PASSWORD / -E, never on the command line).

chassis_control is called as ``PROG DEV get power`` (prints ``power:0|1``),
``PROG DEV set power 0|1``, ``PROG DEV set reset 1``.  Note ipmi_sim, unlike
real BMCs, accepts ``power cycle`` when off.
"""

import os
import sys

from lab.bmc import EMU, LAN_HEAD, USER_LINE, IpmiSim as _LabIpmiSim
from lab.qemu import free_udp_port as _free_udp_port  # noqa: F401 -- bench uses it

__all__ = ["EMU", "LAN_CONF", "IpmiSim"]

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
# The whole lan.conf of a file-backed BMC (bench/bench_stonith.py edits it).
LAN_CONF = LAN_HEAD + CHASSIS_LINE + USER_LINE


class IpmiSim(_LabIpmiSim):
    """Context manager running one ipmi_sim BMC on 127.0.0.1:``port``."""

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
            f.write(CHASSIS_PROG % {"python": sys.executable if os.path.isabs(
                sys.executable) else "/usr/bin/python3"})
        os.chmod(self.prog, 0o755)
