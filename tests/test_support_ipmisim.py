"""Proves lab.bmc.FileBmc: real ipmi_sim BMCs on loopback, honest and lying."""

import os
import shutil

import pytest

from lab.bmc import FileBmc

pytestmark = pytest.mark.skipif(not shutil.which("ipmi_sim") or not shutil.which("ipmitool"),
                                reason="openipmi/ipmitool not installed")


def _status(sim, **kw):
    r = sim.ipmitool("chassis", "power", "status", **kw)
    return r.returncode, r.stdout.strip()


def test_on_off_status_and_state_file():
    with FileBmc() as sim:
        assert sim.port > 0
        assert _status(sim) == (0, "Chassis Power is on")
        assert sim.ipmitool("chassis", "power", "off").returncode == 0
        assert sim.power is False
        assert _status(sim) == (0, "Chassis Power is off")
        assert "set power 0" in sim.calls()
        assert sim.ipmitool("chassis", "power", "on").returncode == 0
        assert sim.power is True
        sim.power = False                      # test side flips the state directly
        assert _status(sim) == (0, "Chassis Power is off")
        # the password never appears on ipmitool's command line
        assert sim.password not in sim.ipmitool_argv("chassis", "power", "status")
        sim_dir = sim.dir
    assert not os.path.exists(sim_dir)


def test_wrong_password_fails():
    with FileBmc(password="Pa55word") as sim:
        assert _status(sim)[0] == 0
        rc, out = _status(sim, password="secret")
        assert rc != 0 and out == ""


def test_lying_bmc_acknowledges_off_but_stays_on():
    with FileBmc(lying=True) as sim:
        r = sim.ipmitool("chassis", "power", "off")
        assert r.returncode == 0, r.stderr
        assert sim.power is True
        assert _status(sim) == (0, "Chassis Power is on")
        sim.lying = False
        assert sim.ipmitool("chassis", "power", "off").returncode == 0
        assert _status(sim) == (0, "Chassis Power is off")


def test_several_instances_at_once():
    with FileBmc() as a, FileBmc(power=False) as b, FileBmc(user="root", password="x1") as c:
        assert len({a.port, b.port, c.port}) == 3
        assert _status(a)[1] == "Chassis Power is on"
        assert _status(b)[1] == "Chassis Power is off"
        assert _status(c)[1] == "Chassis Power is on"
        assert a.ipmitool("chassis", "power", "off").returncode == 0
        assert (a.power, b.power, c.power) == (False, False, True)
