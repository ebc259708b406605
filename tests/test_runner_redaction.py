"""Redaction applies to what is shown, never to output that is parsed.

The issue's case: an IPMI password "on" (BMC passwords are often short words) made
the runner turn ipmitool's "Chassis Power is on" into "Chassis Power is ****" before
the device parsed it, so status failed.  These tests run real commands that print a
known secret as part of their parseable output: `Result.stdout`/`stderr` keep it,
while `summary()`, repr, every exception text and every log line do not.

Mutation that brings the bug back: in `hasf.runner.run`, build the Result from
`redact(out.decode(...))` / `redact(err.decode(...))` again (the parsing asserts fail);
mutation for the shown side: drop `redact` from `Result.summary` (CommandNotFound's and
HasfError's own redaction still covers exceptions, so the summary asserts catch it).
"""

import pytest

from hasf.runner import CommandFailed, CommandTimeout, run
from hasf.secret import Secret


class Log:
    """Collects what the runner logs (it logs through .debug)."""

    def __init__(self):
        self.lines = []

    def debug(self, text):
        self.lines.append(text)


def chassis_power(text):
    """Parse like an ipmitool front end: 'Chassis Power is on|off' -> 'on'/'off'."""
    for line in text.splitlines():
        if line.startswith("Chassis Power is "):
            return line[len("Chassis Power is "):].strip()
    raise ValueError("no power state in %r" % text)


def test_output_that_contains_a_short_password_still_parses():
    Secret("on")  # the BMC password is "on"
    result = run(["printf", "Chassis Power is on\\n"])
    assert result.stdout == "Chassis Power is on\n"
    assert chassis_power(result.stdout) == "on"


def test_what_is_shown_of_that_output_is_redacted():
    password = Secret("hunter2-on-the-bmc")
    log = Log()
    result = run(["sh", "-c", 'echo "user admin password $PW accepted"; echo "$PW" >&2'],
                 env={"PW": password}, log=log)
    assert result.stdout == "user admin password hunter2-on-the-bmc accepted\n"
    assert result.stderr == "hunter2-on-the-bmc\n"
    shown = [result.summary(), repr(result)] + log.lines
    assert all("hunter2-on-the-bmc" not in text for text in shown), shown
    assert result.summary() == "sh exited 0: ****"


def test_failure_text_is_redacted_but_its_result_still_parses():
    password = Secret("s3cret-in-the-error")
    with pytest.raises(CommandFailed) as info:
        run(["sh", "-c", 'echo "login as $PW refused" >&2; exit 1'], env={"PW": password},
            check=True)
    assert "s3cret-in-the-error" not in str(info.value)
    assert "login as **** refused" in info.value.message
    assert info.value.result.stderr == "login as s3cret-in-the-error refused\n"


def test_timeout_text_is_redacted():
    """A secret that is also a program name (or part of its path) is not shown either."""
    Secret("sleep")
    with pytest.raises(CommandTimeout) as info:
        run(["sleep", "30"], timeout=0.3)
    assert "sleep" not in str(info.value) and "****" in str(info.value)
