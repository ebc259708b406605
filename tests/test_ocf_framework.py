"""hasf.ocf: dispatch, exit codes, exit reasons, parameters, probes, notify, check levels."""

import io

import pytest

from hasf import ocf
from hasf.ocf.environment import Invocation
from hasf.ocf.exitcodes import OCFExit
from testagents.hasf_test_agent import HasfTest


def call(agent_class, action, env):
    out, err = io.StringIO(), io.StringIO()
    rc = ocf.run(agent_class, ["agent", action], env, out, err)
    return rc, out.getvalue(), err.getvalue()


def reasons(err):
    return [line[len("ocf-exit-reason:"):] for line in err.splitlines()
            if line.startswith("ocf-exit-reason:")]


def test_exit_codes_are_an_intenum_with_degraded():
    assert OCFExit.NOT_RUNNING == 7 and OCFExit.DEGRADED == 190
    assert OCFExit.DEGRADED_PROMOTED == 191 and OCFExit.ERR_CONFIGURED.ocf_name == "OCF_ERR_CONFIGURED"


def test_lifecycle_is_idempotent(ocf_env):
    assert call(HasfTest, "monitor", ocf_env)[0] == ocf.NOT_RUNNING
    assert call(HasfTest, "stop", ocf_env)[0] == ocf.SUCCESS
    assert call(HasfTest, "start", ocf_env)[0] == ocf.SUCCESS
    assert call(HasfTest, "start", ocf_env)[0] == ocf.SUCCESS
    assert call(HasfTest, "monitor", ocf_env)[0] == ocf.SUCCESS
    assert call(HasfTest, "stop", ocf_env)[0] == ocf.SUCCESS
    assert call(HasfTest, "stop", ocf_env)[0] == ocf.SUCCESS
    assert call(HasfTest, "monitor", ocf_env)[0] == ocf.NOT_RUNNING


def test_all_parameter_problems_reported_at_once(ocf_env):
    ocf_env.update(OCF_RESKEY_count="eleven", OCF_RESKEY_mode="reckless",
                   OCF_RESKEY_delay="soon", OCF_RESKEY_state="relative/path")
    rc, _, err = call(HasfTest, "start", ocf_env)
    assert rc == OCFExit.ERR_CONFIGURED
    [reason] = reasons(err)
    for name in ("count", "mode", "delay", "state"):
        assert "parameter %s=" % name in reason
    assert "one of: fast, safe" in reason


def test_validate_all_reports_problems_and_agent_checks(ocf_env, tmp_path):
    ocf_env["OCF_RESKEY_count"] = "-1"
    rc, _, err = call(HasfTest, "validate-all", ocf_env)
    assert rc == OCFExit.ERR_CONFIGURED and "at least 0" in reasons(err)[0]
    del ocf_env["OCF_RESKEY_count"]
    ocf_env["OCF_RESKEY_state"] = str(tmp_path / "missing-dir" / "state")
    rc, _, err = call(HasfTest, "validate-all", ocf_env)
    assert rc == OCFExit.ERR_CONFIGURED and "does not exist" in reasons(err)[0]
    ocf_env["OCF_RESKEY_state"] = str(tmp_path / "state")
    assert call(HasfTest, "validate-all", ocf_env)[0] == ocf.SUCCESS


def test_stop_and_probe_tolerate_bad_parameters(ocf_env):
    """A failed stop gets the node fenced: parameter typos must not fail stop or probes."""
    assert call(HasfTest, "start", ocf_env)[0] == ocf.SUCCESS
    ocf_env["OCF_RESKEY_count"] = "lots"
    assert call(HasfTest, "start", ocf_env)[0] == OCFExit.ERR_CONFIGURED
    ocf_env["OCF_RESKEY_CRM_meta_interval"] = "0"
    assert call(HasfTest, "monitor", ocf_env)[0] == ocf.SUCCESS  # probe sees the truth
    ocf_env["OCF_RESKEY_CRM_meta_interval"] = "10000"
    assert call(HasfTest, "monitor", ocf_env)[0] == OCFExit.ERR_CONFIGURED
    rc, _, err = call(HasfTest, "stop", ocf_env)
    assert rc == ocf.SUCCESS and "continuing stop despite" in err


def test_typed_values_reach_handlers(ocf_env):
    ocf_env.update(OCF_RESKEY_delay="1500ms", OCF_RESKEY_count="7", OCF_RESKEY_mode="fast",
                   OCF_RESKEY_password="pw")
    seen = {}

    class Probe(HasfTest):
        def start(self):
            seen.update(vars(self.params))
            seen["given"] = self.params.given("count"), self.params.given("fake")

    assert call(Probe, "start", ocf_env)[0] == ocf.SUCCESS
    assert seen["delay"] == 1.5 and seen["count"] == 7 and seen["mode"] == "fast"
    assert seen["fake"] == "dummy" and seen["given"] == (True, False)
    assert str(seen["passwd"]) == "****" and seen["passwd"].reveal() == "pw"


def test_deprecated_alias_warns(ocf_env):
    ocf_env["OCF_RESKEY_password"] = "x"
    rc, _, err = call(HasfTest, "start", ocf_env)
    assert rc == 0 and "password is deprecated; use passwd" in err


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("1500ms", 1.5),
                                          ("2min", 120), ("1h", 3600), (" 3 s ", 3)])
def test_durations(text, seconds):
    assert ocf.Duration().parse(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "-1s", "1.2.3", "5 parsecs", "1e3"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        ocf.Duration().parse(text)


@pytest.mark.parametrize("text,value", [("yes", True), ("TRUE", True), ("1", True), ("on", True),
                                        ("no", False), ("false", False), ("0", False)])
def test_booleans(text, value):
    assert ocf.Boolean().parse(text) is value


def test_unexpected_exception_is_generic_error_never_not_running(ocf_env):
    class Broken(HasfTest):
        def monitor(self):
            raise KeyError("boom")

    for interval in ("0", "10000"):  # recurring monitor and probe alike
        ocf_env["OCF_RESKEY_CRM_meta_interval"] = interval
        rc, out, err = call(Broken, "monitor", ocf_env)
        assert rc == OCFExit.ERR_GENERIC
        assert out == "" and "Traceback" not in err
        [reason] = reasons(err)
        assert "internal error in HasfTest monitor: KeyError" in reason


def test_traceback_goes_to_debug_log_only(ocf_env, tmp_path):
    class Broken(HasfTest):
        def start(self):
            raise RuntimeError("kaput")

    ocf_env.update(HA_debug="1", HA_DEBUGLOG=str(tmp_path / "debug.log"))
    rc, _, err = call(Broken, "start", ocf_env)
    assert rc == OCFExit.ERR_GENERIC
    assert "Traceback" in (tmp_path / "debug.log").read_text()


def test_typed_errors_carry_their_code_and_prefix(ocf_env):
    class Missing(HasfTest):
        def start(self):
            raise ocf.NotInstalled("qemu-img is not installed; install qemu-utils")

    ocf_env["OCF_EXIT_REASON_PREFIX"] = "REASON>"
    rc, _, err = call(Missing, "start", ocf_env)
    assert rc == OCFExit.ERR_INSTALLED
    assert "REASON>qemu-img is not installed; install qemu-utils" in err.splitlines()


def test_command_not_found_maps_to_err_installed(ocf_env):
    from hasf.runner import run

    class NeedsTool(HasfTest):
        def start(self):
            run(["hasf-no-such-tool"])

    rc, _, err = call(NeedsTool, "start", ocf_env)
    assert rc == OCFExit.ERR_INSTALLED and "hasf-no-such-tool not found" in err


def test_stray_command_not_found_on_a_probe_is_an_error_not_not_running(ocf_env):
    """On a probe Pacemaker reads ERR_INSTALLED as "not running here".  A helper the
    monitor happens to miss proves nothing about the resource, so an uncaught
    CommandNotFound on a probe is ERR_GENERIC with a reason that says so; only the
    agent's own ocf.NotInstalled (it knows the resource cannot run here) is 5.
    Mutation: in main._error_answer, drop the `invocation.is_probe` branch."""
    from hasf.runner import run

    class NeedsTool(HasfTest):
        def monitor(self):
            run(["hasf-no-such-tool"])

    class KnowsItCannotRun(HasfTest):
        def monitor(self):
            raise ocf.NotInstalled("the service is not installed on this node")

    ocf_env["OCF_RESKEY_CRM_meta_interval"] = "0"
    rc, _, err = call(NeedsTool, "monitor", ocf_env)
    assert rc == OCFExit.ERR_GENERIC
    [reason] = reasons(err)
    assert "cannot tell whether the resource runs here" in reason
    assert "hasf-no-such-tool not found" in reason
    assert call(KnowsItCannotRun, "monitor", ocf_env)[0] == OCFExit.ERR_INSTALLED
    ocf_env["OCF_RESKEY_CRM_meta_interval"] = "10000"  # a recurring monitor: as before
    assert call(NeedsTool, "monitor", ocf_env)[0] == OCFExit.ERR_INSTALLED


def test_a_tool_that_cannot_start_is_generic_error_even_on_a_probe(ocf_env, tmp_path):
    """A real exec failure that is not ENOENT (ETXTBSY: the binary is open for writing,
    as during a package upgrade) is ERR_GENERIC on start and on a probe, never 5.
    Mutation: in runner._spawn_error, return CommandNotFound for every errno."""
    import os
    import shutil

    from hasf.runner import run

    busy = str(tmp_path / "busy-tool")
    shutil.copy("/bin/true", busy)
    os.chmod(busy, 0o755)

    class BusyTool(HasfTest):
        def start(self):
            run([busy])

        def monitor(self):
            run([busy])

    writer = os.open(busy, os.O_WRONLY)
    try:
        rc, _, err = call(BusyTool, "start", ocf_env)
        assert rc == OCFExit.ERR_GENERIC and "Text file busy" in reasons(err)[0]
        ocf_env["OCF_RESKEY_CRM_meta_interval"] = "0"
        assert call(BusyTool, "monitor", ocf_env)[0] == OCFExit.ERR_GENERIC
    finally:
        os.close(writer)


def test_unknown_and_missing_action(ocf_env):
    assert call(HasfTest, "frobnicate", ocf_env)[0] == OCFExit.ERR_UNIMPLEMENTED
    assert call(HasfTest, "promote", ocf_env)[0] == OCFExit.ERR_UNIMPLEMENTED
    rc, out, _ = call(HasfTest, "usage", ocf_env)
    assert rc == 0 and out.startswith("usage: HasfTest {start|stop|monitor")
    out, err = io.StringIO(), io.StringIO()
    assert ocf.run(HasfTest, ["agent"], ocf_env, out, err) == OCFExit.ERR_ARGS


def test_monitor_return_values_are_exit_codes(ocf_env):
    class Degraded(HasfTest):
        def monitor(self):
            return ocf.DEGRADED

    assert call(Degraded, "monitor", ocf_env)[0] == 190


def test_check_level_falls_back_to_deepest_supported():
    for requested, expected in (("0", 0), ("10", 10), ("20", 10), ("15", 10), ("5", 0),
                                ("junk", 0)):
        inv = Invocation("monitor", {"OCF_CHECK_LEVEL": requested})
        assert inv.check_level((0, 10)) == expected


def test_check_level_reaches_handler(ocf_env):
    call(HasfTest, "start", ocf_env)
    ocf_env.update(OCF_CHECK_LEVEL="20", OCF_RESKEY_fake="changed")
    rc, _, err = call(HasfTest, "monitor", ocf_env)  # depth 10 compares content
    assert rc == OCFExit.ERR_GENERIC and "expected 'changed'" in err
    ocf_env["OCF_CHECK_LEVEL"] = "0"
    assert call(HasfTest, "monitor", ocf_env)[0] == ocf.SUCCESS


def test_probe_and_clone_detection():
    assert Invocation("monitor", {}).is_probe
    assert Invocation("monitor", {"OCF_RESKEY_CRM_meta_interval": "0"}).is_probe
    assert not Invocation("monitor", {"OCF_RESKEY_CRM_meta_interval": "10000"}).is_probe
    assert not Invocation("start", {}).is_probe
    assert Invocation("start", {"OCF_RESKEY_CRM_meta_clone": "1"}).is_clone
    assert Invocation("start", {"OCF_RESKEY_CRM_meta_clone_max": "2"}).is_clone
    assert not Invocation("start", {}).is_clone


def test_notify_variables_parse_into_sets():
    key = "OCF_RESKEY_CRM_meta_notify_"
    inv = Invocation("notify", {
        key + "type": "post", key + "operation": "start",
        key + "active_uname": "node1 node2", key + "start_uname": "node3 ",
        key + "stop_uname": "node2", key + "inactive_uname": "",
        key + "active_resource": "o2:0 o2:1"})
    n = inv.notification
    assert n.is_post and not n.is_pre and n.operation == "start"
    assert n.active_unames == {"node1", "node2"} and n.start_unames == {"node3"}
    assert n.inactive_unames == frozenset() and n.active_resources == {"o2:0", "o2:1"}
    assert n.members_after() == {"node1", "node3"}


def test_deadline_from_operation_timeout():
    clock = [100.0]
    inv = Invocation("start", {"OCF_RESKEY_CRM_meta_timeout": "30000"}, clock=lambda: clock[0])
    assert inv.deadline.remaining() == 28.0  # 2 s kept to report
    clock[0] += 27
    assert inv.deadline.remaining() == 1.0
    default = Invocation("start", {}, clock=lambda: clock[0])
    assert default.deadline.remaining() == 18.0


@pytest.mark.parametrize("timeout_ms,margin", [(60000, 2.0), (20000, 2.0), (10000, 1.0),
                                               (3000, 0.3), (2000, 0.2), (1000, 0.2),
                                               (300, 0.15)])
def test_deadline_keeps_a_real_margin_to_report(timeout_ms, margin):
    """The agent must still write its exit reason and exit before Pacemaker's timer:
    10% of the timeout, between 0.2 s and 2 s, at most half of a tiny timeout -- and
    the deadline never lies beyond the timeout (it used to be at least 0.5 s, so a
    300 ms operation ran past its own timeout).  Mutation: TIMEOUT_MARGIN = 0.1 and
    Deadline(max(0.5, seconds - TIMEOUT_MARGIN)) as before."""
    clock = [0.0]
    inv = Invocation("stop", {"OCF_RESKEY_CRM_meta_timeout": str(timeout_ms)},
                     clock=lambda: clock[0])
    assert inv.deadline.remaining() == pytest.approx(timeout_ms / 1000.0 - margin)


def test_deadline_wait_for_uses_injected_sleep():
    from hasf.deadline import Deadline

    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    d = Deadline(10, clock=lambda: now[0], sleep=sleep)
    assert d.wait_for(lambda: now[0] >= 3, interval=1) is True
    assert slept == [1, 1, 1]
    assert d.wait_for(lambda: False, interval=2, max_interval=4) is None
    assert now[0] == 10 and slept[3:] == [2, 4, 1]


def test_wait_for_does_not_poll_again_once_the_deadline_has_passed():
    """The predicate usually runs a command: one more call after sleeping into the
    deadline would start it with no time left and fail with "no time left" instead of
    the caller's reason.  Mutation: drop `if self.expired(): return None` in wait_for."""
    from hasf.deadline import Deadline

    now = [0.0]
    calls = []

    def sleep(seconds):
        now[0] += seconds

    def predicate():
        calls.append(now[0])
        return False

    assert Deadline(5, clock=lambda: now[0], sleep=sleep).wait_for(predicate, 2) is None
    assert calls == [0.0, 2.0, 4.0] and now[0] == 5.0
