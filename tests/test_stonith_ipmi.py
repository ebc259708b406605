"""fence_hasf_ipmi and external/hasf-ipmi against a real OpenIPMI ipmi_sim BMC.

Every call execs the installed launcher the way pacemaker-fenced (stdin),
an administrator (getopt), cluster-glue's `stonith` CLI and Pacemaker's
`fence_legacy` do.
"""

import socket
import time

import pytest
from lab.bmc import FileBmc

from test_stonith_helpers import CmdlineWatcher, agent, glue_plugins, run, stdin_of

PASSWORD = "Hx9-q7Zr.pw"


@pytest.fixture(params=["native", "ipmitool"])
def client(request):
    """Both IPMI clients must behave the same (the built-in RMCP+ one is the default)."""
    return request.param


@pytest.fixture
def bmc():
    with FileBmc(password=PASSWORD) as sim:
        yield sim


def getopt_args(sim, *extra, password=PASSWORD, client="auto"):
    # fence_ipmilan's own option names: an existing configuration works unchanged
    return [agent("ipmi"), "-a", "127.0.0.1", "-u", str(sim.port), "-l", "admin",
            "-p", password, "-P", "-C", "3", "--ipmi-client", client] + list(extra)


def fenced_stdin(sim, action, password=PASSWORD, client="auto", **extra):
    """What pacemaker-fenced writes: device params + action, port, nodename."""
    params = dict(action=action, port="node1", nodename="node1", ipaddr="127.0.0.1",
                  ipport=sim.port, login="admin", passwd=password, lanplus=1, cipher=3,
                  power_timeout=5, stonith_status_sleep=0.2, ipmi_client=client)
    params.update(extra)
    return stdin_of(**params)


def test_status_on_and_off(bmc, client):
    result = run(getopt_args(bmc, "-o", "status", client=client))
    assert (result.returncode, result.stdout.strip()) == (0, "Status: ON")
    bmc.power = False
    result = run(getopt_args(bmc, "-o", "status", client=client))
    assert (result.returncode, result.stdout.strip()) == (2, "Status: OFF")


def test_off_through_stdin_like_pacemaker_fenced(bmc, client):
    result = run([agent("ipmi")], stdin=fenced_stdin(bmc, "off", client=client))
    assert result.returncode == 0, result.stderr
    assert "Success: Powered OFF" in result.stdout
    assert bmc.power is False and bmc.calls().count("set power 0") == 1
    # already off: success without another power request
    result = run([agent("ipmi")], stdin=fenced_stdin(bmc, "off", client=client))
    assert result.returncode == 0 and "Already OFF" in result.stdout
    assert bmc.calls().count("set power 0") == 1


def test_reboot_is_off_then_on_never_a_cycle(bmc, client):
    result = run([agent("ipmi")], stdin=fenced_stdin(bmc, "reboot", client=client))
    assert result.returncode == 0, result.stderr
    assert "Success: Rebooted" in result.stdout
    sets = [c for c in bmc.calls() if c.startswith("set")]
    assert sets == ["set power 0", "set power 1"], sets
    assert bmc.power is True


def test_reboot_with_method_cycle_still_verifies_off(bmc):
    result = run(getopt_args(bmc, "-o", "reboot", "-m", "cycle", "--power-timeout", "5"))
    assert result.returncode == 0, result.stderr
    assert [c for c in bmc.calls() if c.startswith("set")] == ["set power 0", "set power 1"]


def test_on_and_list(bmc, client):
    bmc.power = False
    result = run(getopt_args(bmc, "-o", "on", client=client))
    assert result.returncode == 0 and "Powered ON" in result.stdout and bmc.power
    result = run(getopt_args(bmc, "-o", "list", "--host-map", "node1", client=client))
    assert result.returncode == 0 and result.stdout.split() == ["node1,"]
    result = run(getopt_args(bmc, "-o", "monitor", client=client))
    assert result.returncode == 0, result.stderr


def test_wrong_password_fails_without_showing_it(bmc, client):
    for action in ("status", "off", "monitor"):
        result = run(getopt_args(bmc, "-o", action, password="wrong-Pw-123", client=client))
        assert result.returncode == 1
        assert "wrong-Pw-123" not in result.stdout + result.stderr
    assert bmc.power is True


def test_unreachable_bmc_is_a_bounded_failure():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        start = time.monotonic()
        result = run([agent("ipmi"), "-a", "127.0.0.1", "-u", str(port), "-l", "admin", "-p",
                      PASSWORD, "-P", "-C", "3", "-o", "off", "--ipmitool-timeout", "1"])
        took = time.monotonic() - start
    assert result.returncode == 1 and "Failed" in result.stderr
    assert took < 20, took


def test_lying_bmc_is_a_failure_not_success(bmc, client):
    bmc.lying = True
    start = time.monotonic()
    result = run([agent("ipmi")], stdin=fenced_stdin(bmc, "off", power_timeout=3, client=client))
    assert result.returncode == 1
    assert "did not power off within 3 s" in result.stderr
    assert 3 <= time.monotonic() - start < 15
    result = run([agent("ipmi")], stdin=fenced_stdin(bmc, "reboot", power_timeout=2, client=client))
    assert result.returncode == 1
    assert "set power 1" not in bmc.calls()      # never switched on without a verified off


def test_no_password_in_any_cmdline_while_fencing(bmc, client):
    with CmdlineWatcher(PASSWORD) as watch:
        for _ in range(3):
            result = run([agent("ipmi")], stdin=fenced_stdin(bmc, "reboot", client=client))
            assert result.returncode == 0, result.stderr
            assert PASSWORD not in result.stdout + result.stderr
        # getopt: the password is on the agent's own argv, put there by this test
        result = run(getopt_args(bmc, "-o", "reboot", "-v", client=client))
    assert watch.scans > 10
    # the only process that may carry it is that agent itself: never ipmitool or anything else
    offenders = [hit for hit in watch.hits if b"fence_hasf_ipmi -a" not in hit[1]]
    assert offenders == []
    assert PASSWORD not in result.stderr             # verbose log redacts it


def test_fence_ipmilan_configuration_works_unchanged(bmc):
    """The very stdin fence_ipmilan accepts gives the same answers from fence_hasf_ipmi."""
    text = stdin_of(action="status", ipaddr="127.0.0.1", ipport=bmc.port, login="admin",
                    passwd=PASSWORD, lanplus=1, cipher=3, privlvl="administrator",
                    method="onoff", port="node1", nodename="node1")
    theirs = run(["fence_ipmilan"], stdin=text)
    ours = run([agent("ipmi")], stdin=text)
    assert (ours.returncode, ours.stdout.strip()) == (theirs.returncode, theirs.stdout.strip())
    assert ours.stdout.strip() == "Status: ON"


def glue_env(sim, hostname="Node1", password=PASSWORD):
    return {"hostname": hostname, "ipaddr": "127.0.0.1", "ipport": str(sim.port),
            "userid": "admin", "passwd": password, "cipher": "3", "power_timeout": "5",
            "stonith_status_sleep": "0.2"}


def test_glue_stonith_cli_reset_status_hosts(bmc):
    with glue_plugins():
        env = glue_env(bmc)
        result = run(["stonith", "-t", "external/hasf-ipmi", "-E", "-S"], env=env)
        assert result.returncode == 0, result.stderr
        result = run(["stonith", "-t", "external/hasf-ipmi", "-E", "-l"], env=env)
        assert result.returncode == 0 and result.stdout.split() == ["Node1"]
        # cluster-glue lower-cases NODE1 before calling the plugin; the map matches anyway
        with CmdlineWatcher(PASSWORD) as watch:
            result = run(["stonith", "-t", "external/hasf-ipmi", "-E", "-T", "reset", "NODE1"],
                         env=env)
        assert result.returncode == 0, result.stderr
        assert watch.hits == [] and PASSWORD not in result.stdout + result.stderr
        assert [c for c in bmc.calls() if c.startswith("set")] == ["set power 0", "set power 1"]
        result = run(["stonith", "-t", "external/hasf-ipmi", "-E", "-T", "off", "node1"],
                     env=env)
        assert result.returncode == 0 and bmc.power is False
        result = run(["stonith", "-t", "external/hasf-ipmi", "-E", "-T", "reset", "other"],
                     env=env)
        assert result.returncode != 0
        bmc.power = True
        bmc.lying = True
        result = run(["stonith", "-t", "external/hasf-ipmi", "-E", "-T", "off", "node1"],
                     env=dict(env, power_timeout="2"))
        assert result.returncode != 0 and bmc.power is True
        bad = run(["stonith", "-t", "external/hasf-ipmi", "-E", "-S"],
                  env=glue_env(bmc, password="nope-nope-1"))
        assert bad.returncode != 0


def test_fence_legacy_with_stdin(bmc):
    with glue_plugins():
        text = stdin_of(plugin="external/hasf-ipmi", action="reboot", nodename="node1",
                        **glue_env(bmc))
        result = run(["/usr/sbin/fence_legacy"], stdin=text)
        assert result.returncode == 0, result.stdout + result.stderr
        assert [c for c in bmc.calls() if c.startswith("set")] == ["set power 0", "set power 1"]
        bmc.lying = True
        text = stdin_of(plugin="external/hasf-ipmi", action="off", nodename="node1",
                        **dict(glue_env(bmc), power_timeout="2"))
        assert run(["/usr/sbin/fence_legacy"], stdin=text).returncode == 1


def test_password_script_and_delay(bmc, tmp_path):
    """The password from a script (no shell, nothing on argv); delay runs before off."""
    script = tmp_path / "bmc-password"
    script.write_text("#!/usr/bin/python3\nprint(%r)\n" % PASSWORD)
    script.chmod(0o700)
    text = fenced_stdin(bmc, "off", passwd="", password_script=str(script), delay=1)
    start = time.monotonic()
    with CmdlineWatcher(PASSWORD) as watch:
        result = run([agent("ipmi")], stdin=text.replace("passwd=\n", ""))
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - start >= 1 and bmc.power is False
    assert watch.hits == []
    # status is never delayed
    start = time.monotonic()
    result = run([agent("ipmi")], stdin=fenced_stdin(bmc, "status", delay=5))
    assert result.returncode == 2 and time.monotonic() - start < 4
