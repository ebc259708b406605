"""Logging the way cluster administrators expect, and right (OCF agents, fence agents, glue plugins).

Tag `<Agent>(<instance>)[<pid>]` like ocf-shellfuncs' ha_log; destinations:
- syslog with the facility from HA_LOGFACILITY / PCMK_logfacility ("none" turns it off),
- HA_LOGFILE (every level but debug) and HA_DEBUGLOG (debug too), one line each,
- stderr when it is a terminal, or when nothing else is configured (pacemaker-execd
  records an agent's stderr).
Debug lines only with HA_debug=1 (or OCF_TRACE_RA).  Every line is redacted.
"""

import os
import sys
import time

from hasf.secret import redact
from hasf.truth import is_true

LEVELS = {"debug": 7, "info": 6, "notice": 5, "warning": 4, "error": 3, "crit": 2}
_FACILITIES = ("kern user mail daemon auth syslog lpr news uucp cron authpriv ftp "
               "local0 local1 local2 local3 local4 local5 local6 local7").split()


class AgentLog:
    def __init__(self, agent, instance="", environ=None, stream=None):
        env = os.environ if environ is None else environ
        self.tag = "%s(%s)[%d]" % (agent, instance or "-", os.getpid())
        self.debug_enabled = is_true(env.get("HA_debug")) or is_true(env.get("OCF_TRACE_RA"))
        self.logfile = env.get("HA_LOGFILE") or None
        self.debuglog = env.get("HA_DEBUGLOG") or None
        self.stream = stream if stream is not None else sys.stderr
        facility = (env.get("HA_LOGFACILITY") or env.get("PCMK_logfacility") or "").lower()
        self.facility = facility if facility in _FACILITIES else None
        self._syslog = None
        interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.to_stream = interactive or not (self.facility or self.logfile or self.debuglog)

    def _syslog_write(self, level, line):
        if self._syslog is None:
            import syslog  # only when a facility is configured

            facility = getattr(syslog, "LOG_" + self.facility.upper())
            syslog.openlog(self.tag, 0, facility)
            self._syslog = syslog
        self._syslog.syslog(LEVELS[level], line)

    def _append(self, path, line):
        """Append one line; a log file hasf creates is 0600 (lines are redacted, but a log
        is no business of other users), an existing one keeps its mode."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, line.encode("utf-8", "replace"))
            finally:
                os.close(fd)
        except OSError:
            pass  # logging must never fail an operation

    def log(self, level, message):
        if level == "debug" and not self.debug_enabled:
            return
        text = "%s: %s" % (level.upper(), redact(str(message)))
        if self.facility:
            self._syslog_write(level, text)
        stamp = time.strftime("%Y/%m/%d_%H:%M:%S")
        line = "%s:\t%s %s\n" % (self.tag, stamp, text)
        if self.logfile and level != "debug":
            self._append(self.logfile, line)
        if self.debuglog:
            self._append(self.debuglog, line)
        if self.to_stream:
            try:
                self.stream.write(line)
                self.stream.flush()
            except (OSError, ValueError):
                pass

    def debug(self, message):
        self.log("debug", message)

    def info(self, message):
        self.log("info", message)

    def warning(self, message):
        self.log("warning", message)

    def error(self, message):
        self.log("error", message)
