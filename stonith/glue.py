"""Front end: a cluster-glue `external/hasf-<device>` STONITH plugin.

cluster-glue runs `<plugin> <op> [host]` with the configuration in the
environment (only the names `getconfignames` prints are forwarded by
`stonith -E`; `fence_legacy` exports every stdin key).  Ops: gethosts,
on|off|reset <host>, status (health of the device), getconfignames,
getinfo-devid|devname|devdescr|devurl|xml.  Exit 0 = done, anything else =
failed.  cluster-glue lower-cases the host name; the host map matches node
names case-insensitively.
"""

import os
import sys

from hasf.deadline import Deadline
from hasf.log import AgentLog
from hasf.secret import redact
from hasf.stonith import secrets
from hasf.stonith.definition import IGNORED
from hasf.stonith.errors import ConfigError, FenceError
from hasf.stonith.params import BOOLEAN, INTEGER
from hasf.stonith.targets import TargetMap
from hasf.xmlwriter import Element

OK, FAILED = 0, 1


def config_names(defn):
    return [p.glue_name for p in defn.params if p.glue]


def info_xml(defn):
    root = Element("parameters")
    for param in defn.params:
        if not param.glue:
            continue
        node = root.add("parameter", {"name": param.glue_name, "unique": "0",
                                      "required": "1" if param.required else "0"})
        kind = {BOOLEAN: "boolean", INTEGER: "integer"}.get(param.kind, "string")
        content = {"type": kind}
        if param.default not in (None, "") and not param.secret:
            default = param.default
            if param.kind == BOOLEAN:
                default = "1" if default else "0"
            content["default"] = str(default)
        node.add("content", content)
        node.add("shortdesc", {"lang": "en"}, param.shortdesc)
        node.add("longdesc", {"lang": "en"}, param.longdesc or param.shortdesc)
    return root.serialize()


def _hosts(defn, opts, log, environ):
    hosts = TargetMap.parse(opts.host_map)
    if hosts:
        return hosts.nodes()
    engine, device = _engine(defn, opts, log, environ)
    try:
        return [target for target, _alias in engine.list()]
    finally:
        device.close()


def _engine(defn, opts, log, environ):
    password = secrets.password(opts, Deadline(60), defn.password_env, environ, log)
    if defn.needs_password and not password:
        raise ConfigError("no password configured (passwd, password_file, password_script)")
    device = defn.factory(opts, password, log)
    return defn.engine(opts, device, log), device


def perform(defn, op, host, opts, log, environ, out):
    if op == "gethosts":
        hosts = _hosts(defn, opts, log, environ)
        if not hosts:
            raise ConfigError("no hosts configured or found")
        out.write("\n".join(hosts) + "\n")
        return OK
    if op == "status":
        engine, device = _engine(defn, opts, log, environ)
        try:
            engine.monitor()
        finally:
            device.close()
        return OK
    if op not in ("on", "off", "reset"):
        raise ConfigError("unknown operation %r" % op)
    if not host:
        raise ConfigError("%s needs a host" % op)
    hostmap = TargetMap.parse(opts.host_map)
    target = hostmap.resolve(host)
    engine, device = _engine(defn, opts, log, environ)
    try:
        if op == "off":
            result = engine.fence_off(target)
        elif op == "on":
            result = engine.on(target)
        else:
            result = engine.reboot(target)
    finally:
        device.close()
    log.info("%s %s: %s" % (op, host, result))
    return OK


def run(defn, argv, out=None, err=None, environ=None):
    out = out or sys.stdout
    err = err or sys.stderr
    environ = os.environ if environ is None else environ
    if not argv:
        err.write("usage: %s <op> [host]\n" % defn.plugin)
        return FAILED
    op, host = argv[0], (argv[1] if len(argv) > 1 else None)
    info = defn.glue_info
    static = {
        "getconfignames": lambda: "\n".join(config_names(defn)) + "\n",
        "getinfo-devid": lambda: info.get("devid", defn.shortdesc) + "\n",
        "getinfo-devname": lambda: info.get("devname", defn.plugin + " STONITH device") + "\n",
        "getinfo-devdescr": lambda: info.get("devdescr", defn.longdesc) + "\n",
        "getinfo-devurl": lambda: info.get("devurl", defn.vendor_url) + "\n",
        "getinfo-xml": lambda: info_xml(defn),
    }
    if op in static:
        out.write(static[op]())
        return OK
    log = AgentLog(defn.plugin, host or "", environ, stream=err)
    try:
        opts = defn.params.parse(defn.params.from_environ(environ), ignore=IGNORED)
        return perform(defn, op, host, opts, log, environ, out)
    except FenceError as exc:
        log.error("%s %s failed: %s" % (op, host or "", exc))
        return FAILED
    except Exception as exc:  # noqa: BLE001 -- one redacted line; never a false success
        log.error("%s %s failed unexpectedly: %s: %s"
                  % (op, host or "", type(exc).__name__, redact(str(exc))))
        return FAILED


def main_for(defn):
    """The `glue_main` entry point a launcher calls (no arguments)."""
    def main():
        return run(defn, sys.argv[1:])
    return main
