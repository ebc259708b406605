"""Run one action of an OCF agent the way pacemaker-execd does, bounded.

Why: outside a cluster, something has to give an agent the environment
Pacemaker would (OCF_ROOT, OCF_RESKEY_*, the operation's interval and
timeout, HA_RSCTMP) and bound it: the storage path starts and stops the SAN
agents on the host this way, and the tests drive agents with it.

`AgentRun(agent, rsctmp, instance, resource_type, **params)` keeps one
resource's parameters; calling it with an action gives a `Result` (rc,
stdout, stderr, the exit reason, wall seconds).  A monitor is recurring by
default; `probe()` is the interval-0 monitor Pacemaker runs on every node.
"""

import subprocess
import time


class Result:
    def __init__(self, proc, seconds):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.seconds = seconds

    @property
    def reason(self):
        lines = [line for line in self.stderr.splitlines() if line.startswith("ocf-exit-reason:")]
        return lines[-1][len("ocf-exit-reason:"):] if lines else ""

    def __repr__(self):
        return "rc=%s in %.1fs\nstdout: %s\nstderr: %s" % (self.rc, self.seconds, self.stdout,
                                                            self.stderr)


class AgentRun:
    """Run actions of an agent for one resource instance."""

    def __init__(self, agent, rsctmp, instance, resource_type, **params):
        self.agent = agent
        self.rsctmp = rsctmp
        self.instance = instance
        self.resource_type = resource_type
        self.params = params

    def env(self, interval=10000, timeout=20000, extra=None, params=None):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf",
               "OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1",
               "OCF_RESOURCE_INSTANCE": self.instance, "OCF_RESOURCE_TYPE": self.resource_type,
               "OCF_RESOURCE_PROVIDER": "hasf", "HA_RSCTMP": self.rsctmp,
               "OCF_RESKEY_CRM_meta_interval": str(interval),
               "OCF_RESKEY_CRM_meta_timeout": str(timeout)}
        merged = dict(self.params)
        merged.update(params or {})
        for key, value in merged.items():
            if value is not None:
                env["OCF_RESKEY_" + key] = str(value)
        env.update(extra or {})
        return env

    def __call__(self, action, interval=None, timeout=20000, extra=None, limit=None, **params):
        if interval is None:
            interval = 0 if action != "monitor" else 10000
        env = self.env(interval, timeout, extra, params)
        start = time.monotonic()
        proc = subprocess.run([self.agent, action], env=env, capture_output=True, text=True,
                              timeout=limit or (timeout / 1000.0 + 30))
        return Result(proc, time.monotonic() - start)

    def probe(self, **kw):
        return self("monitor", interval=0, **kw)
