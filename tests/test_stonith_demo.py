"""fence_hasf_demo / external/hasf-demo against a real sshd in a network namespace.

The remote "power off" is harmless: it kills that namespace's sshd (the
node becomes unreachable: connection refused).  The device fails closed: a
node that is unreachable before the device itself sent the power command is
a failure, never "off" (a network partition is not a fenced node).  The sysrq default is never
used here -- every call passes off_command and reboot_command explicitly.
The boot id is a file the test rewrites when it "boots" the node again.
"""

import os
import threading
import time

import pytest
from support.sshd import NamespaceSshd

from test_stonith_helpers import agent, glue_plugins, run, stdin_of

KILL_SSHD = "kill $(cat /run/sshd.pid)"


@pytest.fixture
def node():
    with NamespaceSshd(hostname="demonode") as sshd:
        sshd.boot_id_file = os.path.join(sshd.dir, "boot_id")
        sshd.record_dir = os.path.join(sshd.dir, "acts")
        with open(sshd.boot_id_file, "w") as handle:
            handle.write("boot-1\n")
        yield sshd


def params(sshd, **extra):
    values = dict(host_map="node1:%s" % sshd.address, identity_file=sshd.identity,
                  known_hosts_file=sshd.known_hosts, off_command=KILL_SSHD,
                  reboot_command=KILL_SSHD, boot_id_command="cat %s" % sshd.boot_id_file,
                  login_timeout=2, power_timeout=10, stonith_status_sleep=0.2,
                  record_dir=sshd.record_dir)
    values.update(extra)
    return values


def reboot_later(sshd, new_id="boot-2"):
    """Play the node: once sshd is gone, boot again with a new boot id."""
    def play():
        deadline = time.monotonic() + 20
        while sshd.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        with open(sshd.boot_id_file, "w") as handle:
            handle.write(new_id + "\n")
        sshd.up()
    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    return thread


def test_status_on_then_off_after_the_off_command(node):
    text = stdin_of(action="status", port="node1", nodename="node1", **params(node))
    result = run([agent("demo")], stdin=text)
    assert (result.returncode, result.stdout.strip()) == (0, "Status: ON"), result.stderr
    result = run([agent("demo")], stdin=stdin_of(action="off", port="node1", **params(node)))
    assert result.returncode == 0, result.stderr
    assert "Powered OFF" in result.stdout
    assert node.proc.poll() is not None             # really unreachable
    # a later run did not act: it cannot tell off from partitioned -- an error, never 2
    result = run([agent("demo")], stdin=stdin_of(action="status", port="node1", **params(node)))
    assert result.returncode == 1 and "cannot verify power" in result.stderr, result


@pytest.mark.parametrize("how", ["link", "kill"])
def test_unreachable_node_is_never_off(node, how):
    """A partition (link down: timeouts) or a dead sshd (refused) before the act: rc 1.

    Mutation that brings the bug back: in DemoDevice.status return OFF for an
    unreachable target without checking self.acted -> rc 0 "Success: Already OFF"."""
    node.down(how)
    for action in ("off", "reboot"):
        result = run([agent("demo")], stdin=stdin_of(action=action, port="node1",
                                                     **params(node)))
        assert result.returncode == 1, (action, result.stdout, result.stderr)
        assert "Success" not in result.stdout
        assert "did not power it off" in result.stderr and "cannot verify power" in result.stderr
    result = run([agent("demo")], stdin=stdin_of(action="status", port="node1", **params(node)))
    assert result.returncode == 1, result        # not 2 (off)


def test_address_with_nothing_listening_is_never_off():
    """The issue's reproduction: host_map=node1:127.0.0.1 ssh_port=1 used to answer
    "Success: Already OFF" (rc 0).  Same mutation as above."""
    text = stdin_of(action="off", port="node1", host_map="node1:127.0.0.1", ssh_port=1,
                    known_hosts_file="/dev/null", login_timeout=2, power_timeout=3,
                    off_command="true")
    result = run([agent("demo")], stdin=text)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Already OFF" not in result.stdout and "cannot verify power" in result.stderr


def test_reboot_is_done_at_the_verified_off(node):
    """The node restarts by itself after the sysrq reboot; the fence is done once it went
    silent after the command, not when it is back (in the lab, waiting let node1 rejoin
    before vm1 failed over).  Here the node never comes back: still rc 0, well inside
    power_timeout.  Mutation: DemoDevice.restarts_by_itself = False -> the engine waits
    power_timeout for a new boot id and logs "did not come back on"."""
    started = time.monotonic()
    result = run([agent("demo")], stdin=stdin_of(action="reboot", port="node1",
                                                 **params(node, power_timeout=15)))
    assert result.returncode == 0, result.stderr
    assert "Success: Rebooted" in result.stdout
    assert "restarts by itself" in result.stderr
    assert "did not come back" not in result.stderr
    assert node.proc.poll() is not None             # the command really took it down
    assert time.monotonic() - started < 12


def test_reboot_that_does_not_take_the_node_down_fails(node):
    """A reboot command that leaves the node answering with its old boot id is no fence."""
    result = run([agent("demo")], stdin=stdin_of(action="reboot", port="node1",
                                                 **params(node, reboot_command="true",
                                                          power_timeout=3)))
    assert result.returncode == 1 and "did not power off" in result.stderr, result.stderr


def test_session_that_outlives_its_bound_after_the_command_left_still_counts(node):
    """In the lab (TCG guests) the ssh session carrying the sysrq reboot did not end within
    login_timeout + 5 s after the node went down, and the device reported "whether the
    command was sent is unknown".  ssh's own record says it left: the device acts on it
    and then verifies off as always.  Here the command takes the node's sshd down and
    keeps the session open.  Mutation: ignore the partial stderr of a timed-out ssh."""
    hang = KILL_SSHD + "; sleep 12"
    started = time.monotonic()
    result = run([agent("demo")], stdin=stdin_of(action="off", port="node1",
                                                 **params(node, off_command=hang)))
    assert result.returncode == 0, result.stderr
    assert "Success: Powered OFF" in result.stdout
    assert time.monotonic() - started < 20


def test_off_command_that_does_not_take_the_node_down_fails(node):
    result = run([agent("demo")], stdin=stdin_of(action="off", port="node1",
                                                 **params(node, off_command="true",
                                                          power_timeout=2)))
    assert result.returncode == 1 and "did not power off" in result.stderr


def test_wrong_host_key_is_an_error_never_off(node, tmp_path):
    bogus = tmp_path / "known_hosts"
    bogus.write_text("%s ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHasfHasfHasfHasfHasfHasfHasfHasf"
                     "HasfHasfHasf\n" % node.address)
    for action in ("status", "off"):
        result = run([agent("demo")], stdin=stdin_of(action=action, port="node1",
                                                     **params(node, known_hosts_file=bogus)))
        assert result.returncode == 1, result.stdout
    assert node.proc.poll() is None                  # the off command never ran


def test_unknown_node_is_refused(node):
    result = run([agent("demo")], stdin=stdin_of(action="off", port="node9", **params(node)))
    assert result.returncode == 1 and "node9" in result.stderr


def test_glue_plugin_reset(node):
    env = {k: str(v) for k, v in params(node).items()}
    env["hostlist"] = env.pop("host_map")
    with glue_plugins():
        result = run(["stonith", "-t", "external/hasf-demo", "-E", "-l"], env=env)
        assert result.stdout.split() == ["node1"], result.stderr
        result = run(["stonith", "-t", "external/hasf-demo", "-E", "-S"], env=env)
        assert result.returncode == 0, result.stderr
        player = reboot_later(node)
        result = run(["stonith", "-t", "external/hasf-demo", "-E", "-T", "reset", "NODE1"],
                     env=env)
        player.join(20)
        assert result.returncode == 0, result.stderr


# -- a retry by a new process takes up the reboot an earlier attempt sent (act_record.py) --

#: a reboot that takes the node down only after the attempt sending it gave up verifying
SLOW_REBOOT = "nohup sh -c 'sleep 2; %s' >/dev/null 2>&1 </dev/null &" % KILL_SSHD


def _failed_first_attempt(node):
    """Attempt 1 sends the (slow) reboot and fails: the node still answers within 1 s."""
    result = run([agent("demo")], stdin=stdin_of(action="reboot", port="node1", **params(
        node, reboot_command=SLOW_REBOOT, power_timeout=1)))
    assert result.returncode == 1 and "did not power off" in result.stderr, result.stderr
    deadline = time.monotonic() + 15
    while node.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert node.proc.poll() is not None, "the slow reboot never took the node down"


def _retry(node, action="reboot", **extra):
    return run([agent("demo")], stdin=stdin_of(action=action, port="node1",
                                               **params(node, **extra)))


def test_retry_takes_up_the_reboot_an_earlier_attempt_sent(node):
    """fenced's next attempt is a new process: the node it finds unreachable went down
    after attempt 1's reboot command, and the record says so -> rc 0.  Once verified the
    record is gone: a further request fails closed again.  Mutation: Engine.reboot
    without device.resume_reboot -> the retry answers rc 1 (unreachable, not powered off
    by this device)."""
    _failed_first_attempt(node)
    result = _retry(node)
    assert result.returncode == 0, result.stderr
    assert "taking up the reboot command an earlier attempt sent" in result.stderr
    assert _retry(node).returncode == 1         # forgotten after the verified off


def test_retry_after_the_node_is_back_does_not_reboot_it_again(node):
    """Attempt 1's reboot took the node down and it came back (new boot id): the reboot
    happened, the retry succeeds without sending another command.  Mutation: no act
    records -> the retry sees a node that is on and reboots it again (the marker file
    appears; with this harmless command the node stays up and the retry fails)."""
    player = reboot_later(node)
    _failed_first_attempt(node)
    player.join(20)
    marker = os.path.join(node.dir, "rebooted-again")
    result = _retry(node, reboot_command="touch %s" % marker, power_timeout=3)
    assert result.returncode == 0, result.stderr
    assert not os.path.exists(marker)


def test_an_off_request_never_takes_up_a_reboot_record(node):
    """A record is a reboot in progress; an off request must see the node off by its own
    act (a node back from the reboot is on).  Mutation: call resume_reboot in Engine.off."""
    _failed_first_attempt(node)
    assert _retry(node, action="off").returncode == 1


def test_records_others_could_write_are_ignored(node):
    """Whoever can write a record can make an unreachable node count as off: a record
    directory others may write is ignored and the retry fails closed.  Mutation: drop
    the ownership/mode check in ActRecords._private_directory -> rc 0."""
    _failed_first_attempt(node)
    os.chmod(node.record_dir, 0o777)
    result = _retry(node)
    assert result.returncode == 1, result.stderr
    assert "act records ignored" in result.stderr


def test_an_old_record_is_ignored(node):
    """An act counts for 2 x power_timeout + login_timeout of the attempt reading it.
    Mutation: drop the age check in ActRecords._valid -> rc 0."""
    _failed_first_attempt(node)
    time.sleep(2.5)
    result = _retry(node, power_timeout=0.5, login_timeout=1)
    assert result.returncode == 1, result.stderr
