"""Logging: tag, HA_LOGFILE / HA_DEBUGLOG / HA_debug, syslog facility, redaction."""

import io

from hasf.ocf.log import AgentLog
from hasf.secret import Secret


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_tag_and_files(tmp_path):
    env = {"HA_LOGFILE": str(tmp_path / "ha.log"), "HA_DEBUGLOG": str(tmp_path / "debug.log")}
    log = AgentLog("VirtualMachine", "vm1", env, stream=io.StringIO())
    log.info("hello")
    log.debug("hidden")
    text = (tmp_path / "ha.log").read_text()
    assert text.startswith("VirtualMachine(vm1)[") and "INFO: hello" in text
    assert "hidden" not in (tmp_path / "debug.log").read_text()
    env["HA_debug"] = "1"
    log = AgentLog("VirtualMachine", "vm1", env, stream=io.StringIO())
    log.debug("shown")
    assert "DEBUG: shown" in (tmp_path / "debug.log").read_text()
    assert "shown" not in (tmp_path / "ha.log").read_text()


def test_stderr_when_interactive_or_nothing_configured(tmp_path):
    stream = Tty()
    AgentLog("A", "i", {"HA_LOGFILE": str(tmp_path / "f")}, stream=stream).warning("w")
    assert "WARNING: w" in stream.getvalue()
    quiet = io.StringIO()
    AgentLog("A", "i", {"HA_LOGFILE": str(tmp_path / "f")}, stream=quiet).warning("w")
    assert quiet.getvalue() == ""
    bare = io.StringIO()
    AgentLog("A", "i", {}, stream=bare).error("e")
    assert "ERROR: e" in bare.getvalue()


def test_facility_from_ha_or_pcmk(monkeypatch):
    sent = []
    import syslog

    monkeypatch.setattr(syslog, "openlog", lambda tag, opt, fac: sent.append(("open", tag, fac)))
    monkeypatch.setattr(syslog, "syslog", lambda prio, msg: sent.append((prio, msg)))
    log = AgentLog("A", "i", {"PCMK_logfacility": "local3"}, stream=io.StringIO())
    log.info("via syslog")
    assert sent[0][2] == syslog.LOG_LOCAL3 and sent[1] == (6, "INFO: via syslog")
    none = AgentLog("A", "i", {"HA_LOGFACILITY": "none"}, stream=io.StringIO())
    assert none.facility is None


def test_secrets_redacted_in_log_lines(tmp_path):
    Secret("p4ssw0rd")
    env = {"HA_LOGFILE": str(tmp_path / "ha.log")}
    AgentLog("A", "i", env, stream=io.StringIO()).error("login with p4ssw0rd failed")
    assert "p4ssw0rd" not in (tmp_path / "ha.log").read_text()


def test_a_log_file_hasf_creates_is_0600_and_an_existing_one_keeps_its_mode(tmp_path):
    """Log lines are redacted, but a password_script's secret or a device's name in a log
    is still no business of other users.  Mutation: open(path, "a") in hasf.log._append
    -> the new file is 0644 under the usual umask."""
    import os

    fresh = tmp_path / "fresh.log"
    AgentLog("A", "i", {"HA_LOGFILE": str(fresh)}, stream=io.StringIO()).warning("w")
    assert oct(os.stat(fresh).st_mode & 0o777) == "0o600"
    kept = tmp_path / "kept.log"
    kept.write_text("")
    os.chmod(kept, 0o640)
    AgentLog("A", "i", {"HA_LOGFILE": str(kept)}, stream=io.StringIO()).warning("w")
    assert oct(os.stat(kept).st_mode & 0o777) == "0o640" and "w" in kept.read_text()
