"""What Pacemaker (or ocf-tester, or a person) told this invocation.

Everything an agent learns about its call comes from argv[1] and the
environment; this module reads it once into plain attributes so handlers
never touch os.environ.
"""

import os

from hasf.deadline import Deadline

DEFAULT_TIMEOUT = 20.0
#: Kept back from the operation timeout so the agent can still log, write its exit
#: reason and exit before Pacemaker's own timer kills it (a killed stop is a fence):
#: 10% of the timeout, at least 0.2 s (Python's exit alone takes tens of ms on a busy
#: node), at most 2 s -- and never more than half of a very short timeout.
MARGIN_SHARE, MARGIN_MIN, MARGIN_MAX = 0.1, 0.2, 2.0


def timeout_margin(seconds):
    """Seconds of the operation timeout the agent keeps for reporting."""
    return min(seconds / 2.0, max(MARGIN_MIN, min(MARGIN_MAX, seconds * MARGIN_SHARE)))


def _int(text, default=0):
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return default


def _words(text):
    return frozenset((text or "").split())


class Notification:
    """A clone notification: pre/post of start/stop (or promote/demote), and who is where."""

    def __init__(self, environ):
        key = "OCF_RESKEY_CRM_meta_notify_"
        self.type = environ.get(key + "type", "")
        self.operation = environ.get(key + "operation", "")
        for which in ("active", "inactive", "start", "stop", "promote", "demote",
                      "promoted", "unpromoted", "all", "available"):
            setattr(self, which + "_unames", _words(environ.get(key + which + "_uname")))
            setattr(self, which + "_resources", _words(environ.get(key + which + "_resource")))

    @property
    def is_pre(self):
        return self.type == "pre"

    @property
    def is_post(self):
        return self.type == "post"

    def members_after(self):
        """The node names that will hold an active instance once this transition is done."""
        return (self.active_unames - self.stop_unames) | self.start_unames

    def __repr__(self):
        return "Notification(%s-%s)" % (self.type, self.operation)


class Invocation:
    """One call of an agent: action, instance, operation meta, deadline."""

    def __init__(self, action, environ=None, clock=None):
        env = os.environ if environ is None else environ
        self.environ = env
        self.action = action
        self.instance = env.get("OCF_RESOURCE_INSTANCE", "")
        self.resource_type = env.get("OCF_RESOURCE_TYPE", "")
        self.provider = env.get("OCF_RESOURCE_PROVIDER", "")
        self.interval_ms = _int(env.get("OCF_RESKEY_CRM_meta_interval"), 0)
        self.timeout_ms = _int(env.get("OCF_RESKEY_CRM_meta_timeout"), 0)
        self.requested_check_level = env.get("OCF_CHECK_LEVEL", "0")
        self.on_node = env.get("OCF_RESKEY_CRM_meta_on_node", "")
        self.clone = env.get("OCF_RESKEY_CRM_meta_clone")
        self.clone_max = _int(env.get("OCF_RESKEY_CRM_meta_clone_max"), 0)
        self.migrate_source = env.get("OCF_RESKEY_CRM_meta_migrate_source", "")
        self.migrate_target = env.get("OCF_RESKEY_CRM_meta_migrate_target", "")
        seconds = self.timeout_ms / 1000.0 if self.timeout_ms > 0 else DEFAULT_TIMEOUT
        kwargs = {"clock": clock} if clock else {}
        self.deadline = Deadline(seconds - timeout_margin(seconds), **kwargs)
        self._notification = None

    @property
    def is_probe(self):
        """A monitor with interval 0: runs on every node, before anything is set up there."""
        return self.action == "monitor" and self.interval_ms == 0

    @property
    def is_clone(self):
        return self.clone is not None or self.clone_max > 0

    @property
    def notification(self):
        if self._notification is None:
            self._notification = Notification(self.environ)
        return self._notification

    def check_level(self, supported):
        """The deepest supported OCF_CHECK_LEVEL not above the requested one.

        The OCF spec recommends falling back; resource-agents' Filesystem
        fails with ERR_CONFIGURED instead, which turns a typo into a stop.
        """
        requested = _int(self.requested_check_level, 0)
        usable = [level for level in supported if level <= requested]
        return max(usable) if usable else min(supported, default=0)

    def __repr__(self):
        return "Invocation(%s %s interval=%dms)" % (self.action, self.instance, self.interval_ms)
