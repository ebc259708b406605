"""Front end: a Pacemaker / fence-agents fence agent (`fence_hasf_<device>`).

Input as fence-agents take it: `name=value` lines on stdin when there are no
arguments (what pacemaker-fenced sends: action, port/plug, nodename and the
device's parameters), otherwise getopt options with fence-agents' short and
long names.  Actions: on, off, reboot (default), status (0 = on, 2 = off),
list, list-status, monitor, metadata, validate-all.  Exit 0 = success,
1 = failure, and status 2 = off.  This is the only place (with `glue`) that
prints and exits; all failures arrive as typed errors.
"""

import os
import sys

from hasf.deadline import Deadline
from hasf.log import AgentLog
from hasf.secret import redact
from hasf.stonith import secrets
from hasf.stonith.definition import IGNORED
from hasf.stonith.errors import ConfigError, FenceError, UnknownTarget
from hasf.stonith.params import BOOLEAN, SELECT
from hasf.stonith.targets import TargetMap
from hasf.xmlwriter import Element

OK, FAILED, STATUS_OFF = 0, 1, 2
ALIASES = {"meta-data": "metadata", "enable": "on", "disable": "off", "poweroff": "off",
           "poweron": "on", "reset": "reboot", "stat": "status", "hostlist": "list"}
VERSION = "hasf 0.1.0"


def metadata(defn):
    """Meta-data XML valid against fence-agents' metadata.rng (what stonith_admin -M reads)."""
    root = Element("resource-agent", {"name": defn.agent, "shortdesc": defn.shortdesc})
    root.add("longdesc", text=defn.longdesc)
    root.add("vendor-url", text=defn.vendor_url)
    params = root.add("parameters")
    for param in defn.params:
        if not param.fence:
            continue
        names = [(param.name, param.aliases[0] if param.aliases else None, False)]
        names += [(alias, None, True) for alias in param.aliases]
        for name, obsoletes, deprecated in names:
            attrs = {"name": name, "unique": "0", "required": "1" if param.required else "0"}
            if deprecated:
                attrs["deprecated"] = "1"
            elif obsoletes:
                attrs["obsoletes"] = obsoletes
            node = params.add("parameter", attrs)
            node.add("getopt", {"mixed": param.getopt_text()})
            content = {"type": param.kind}
            if param.default not in (None, "") and not param.secret:
                default = param.default
                if param.kind == BOOLEAN:
                    default = "1" if default else "0"
                elif isinstance(default, float) and default == int(default):
                    default = int(default)
                content["default"] = str(default)
            cnode = node.add("content", content)
            if param.kind == SELECT:
                for choice in param.choices:
                    cnode.add("option", {"value": choice})
            node.add("shortdesc", {"lang": "en"}, param.shortdesc)
    actions = root.add("actions")
    for action in defn.actions:
        actions.add("action", {"name": action, "automatic": "0"} if action == "on"
                    else {"name": action})
    return '<?xml version="1.0" ?>\n' + root.serialize()


def usage(defn):
    lines = ["Usage: %s [options]  (or name=value lines on stdin)" % defn.agent, "Options:"]
    for param in defn.params:
        if param.fence:
            lines.append("   %-40s %s" % (param.getopt_text(), param.shortdesc))
    return "\n".join(lines) + "\n"


class Invocation:
    """One run of the fence agent: options, log, device, engine."""

    def __init__(self, defn, opts, log, environ):
        self.defn, self.opts, self.log, self.environ = defn, opts, log, environ
        self.map = TargetMap.parse(opts.host_map)
        self.device = None

    def target(self, required=True):
        """The target this action is for (plug/port, mapped through host_map)."""
        plug = self.opts.plug
        if self.defn.single_target:
            # one BMC fences one machine; a configured host list guards against a wrong plug
            if plug and self.map:
                self.map.resolve(plug)
            return plug or self.opts.nodename or (self.map.nodes()[0] if self.map
                                                   else "the machine")
        if not plug:
            if required:
                raise ConfigError("no target: give plug/port (-n)")
            return None
        return self.map.resolve(plug)

    def open(self):
        deadline = Deadline(60)
        password = secrets.password(self.opts, deadline, self.defn.password_env, self.environ,
                                    self.log)
        if self.defn.needs_password and not password:
            raise ConfigError("no password: set password, password_file, password_script or %s"
                              % " / ".join(self.defn.password_env or ("password",)))
        self.device = self.defn.factory(self.opts, password, self.log)
        return self.defn.engine(self.opts, self.device, self.log)

    def close(self):
        if self.device is not None:
            self.device.close()


def perform(inv, action, out):
    """Run `action`; return the exit code.  Raises FenceError on failure."""
    if action == "validate-all":
        inv.target(required=False)
        inv.defn.factory(inv.opts, None, inv.log, validate_only=True)
        out.write("Configuration is valid\n")
        return OK
    if action in ("list", "list-status"):
        engine = inv.open()
        if action == "list":
            for target, alias in engine.list():
                out.write("%s,%s\n" % (target, alias or ""))
        else:
            for target, alias, state in engine.list_status():
                out.write("%s,%s,%s\n" % (target, alias or "", state.upper()))
        return OK
    if action == "monitor":
        inv.open().monitor()
        return OK
    target = inv.target()
    engine = inv.open()
    if action == "status":
        state = engine.status(target)
        out.write("Status: %s\n" % state.upper())
        return STATUS_OFF if state == "off" else OK
    if action == "off":
        result = engine.fence_off(target)
        out.write("Success: %s\n" % ("Already OFF" if result == "already off" else "Powered OFF"))
    elif action == "on":
        result = engine.on(target)
        out.write("Success: %s\n" % ("Already ON" if result == "already on" else "Powered ON"))
    else:
        result = engine.reboot(target)
        out.write("Success: Rebooted\n")
    inv.log.info("%s %s: %s" % (action, target, result))
    return OK


def run(defn, argv, stdin=None, out=None, err=None, environ=None):
    """The whole agent; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    environ = os.environ if environ is None else environ
    params = defn.params
    warnings = []
    try:
        if argv:
            pairs = params.from_argv(argv)
        else:
            pairs = params.from_stdin((stdin or sys.stdin).read())
        opts = params.parse(pairs, ignore=IGNORED, warn=warnings.append, require=False)
    except ConfigError as exc:
        err.write("Failed: %s\n" % exc)
        return FAILED
    action = (opts.action or "reboot").lower()
    action = ALIASES.get(action, action)
    if opts.help:
        out.write(usage(defn))
        return OK
    if opts.version:
        out.write(VERSION + "\n")
        return OK
    if action == "metadata":
        out.write(metadata(defn))
        return OK
    log = AgentLog(defn.agent, opts.plug or opts.nodename or "", environ, stream=err)
    if opts.verbose or opts.verbose_level > 0:
        log.debug_enabled = True
    if opts.quiet:
        log.to_stream = False
    if opts.debug_file:
        log.debuglog, log.debug_enabled = opts.debug_file, True
    for text in warnings:
        log.warning(text)
    if action not in defn.actions and action not in ("list", "list-status"):
        err.write("Failed: unknown action %r\n" % action)
        return FAILED
    inv = None
    try:
        params.parse(pairs, ignore=IGNORED)  # now every required parameter must be there
        inv = Invocation(defn, opts, log, environ)
        return perform(inv, action, out)
    except UnknownTarget as exc:
        log.error(str(exc))
        err.write("Failed: %s\n" % exc)
        return FAILED
    except FenceError as exc:
        log.error("%s failed: %s" % (action, exc))
        err.write("Failed: %s\n" % exc)
        return FAILED
    except Exception as exc:  # noqa: BLE001 -- one line, redacted; never a false success
        log.error("%s failed unexpectedly: %s: %s" % (action, type(exc).__name__, redact(str(exc))))
        err.write("Failed: internal error: %s\n" % redact(str(exc)))
        return FAILED
    finally:
        if inv is not None:
            inv.close()


def main_for(defn):
    """The `fence_main` entry point a launcher calls (no arguments)."""
    def main():
        return run(defn, sys.argv[1:])
    return main
