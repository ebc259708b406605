"""CHAP logins of ocf:hasf:iscsi in a guest kernel, watched by a process-table scanner.

Host: tgtd with a target made by hasf's iSCSITarget + iSCSILogicalUnit, and
two CHAP accounts bound to it with tgtadm (test-only passwords in tgtadm's
argv: that is the test's doing, never the agent's): an incoming one (the
initiator must log in as it) and an outgoing one (what the target answers
a mutual-CHAP initiator with).  tgt asks for CHAP on every login then, and
answers mutual CHAP only when the initiator asks for it, so one target
serves every case.

Guest (one boot, guest.py): iscsid, then a scanner (SCANNER, started in the
background before any agent) reads every /proc/*/cmdline and environ in a
loop until told to stop, looking for any of the test's secrets; then the
cases, each a hasf `iscsi` action started through OCFEXEC (which reads the
agent's environment from a 0600 file: `env K=V agent` would put the secret
in env's own argv for a moment, the harness's leak, not the agent's);
RECORD shows the node record's mode and which auth keys it holds (names
only).  The agent's own environ holds a `password` given as a parameter --
that is how Pacemaker's execd hands parameters over -- so the scanner counts
exactly that apart (`agent_input`); anything else is a leak.
"""

import json
import os
import re

from lab.guest import Command, Guest
from lab.storage_path import export_san
from lab.tgtd import Tgtd

IQN = "iqn.2026-12.org.hasf.test:chap"
#: test-only credentials (never real ones); each password is distinct so a hit names its case
USER, PASSWORD = "hasf-initiator", "in-secret-4711"
WRONG = "not-the-secret-0815"
TARGET_USER, TARGET_PASSWORD = "hasf-target", "out-secret-4242"
WRONG_TARGET = "not-the-target-0666"
FILE_PASSWORD = PASSWORD  # the *_file cases read the same secret from a file
SECRETS = (PASSWORD, WRONG, TARGET_PASSWORD, WRONG_TARGET)

SCANNER = r'''
import json, os, sys, time
secrets_path, stop_path, report_path, agent = sys.argv[1:5]
with open(secrets_path) as handle:
    secrets = [s.encode() for s in handle.read().split("\n") if s]
me, leaks, agent_input, seen, programs, loops = os.getpid(), {}, {}, set(), {}, 0
INPUT = (b"OCF_RESKEY_password", b"OCF_RESKEY_password_in")

def read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return b""

deadline = time.monotonic() + 900
while not os.path.exists(stop_path) and time.monotonic() < deadline:
    loops += 1
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        cmdline = read("/proc/%s/cmdline" % name)
        environ = read("/proc/%s/environ" % name)
        argv = cmdline.decode("utf-8", "replace").rstrip("\0").split("\0")
        if cmdline and (name, argv[0]) not in seen:
            seen.add((name, argv[0]))
            program = os.path.basename(argv[0])
            programs[program] = programs.get(program, 0) + 1
        for secret in secrets:
            if secret in cmdline:
                leaks["%s cmdline" % name] = argv
            for variable in environ.split(b"\0"):
                if secret in variable:
                    key = variable.split(b"=", 1)[0]
                    hit = "%s environ %s" % (name, key.decode("utf-8", "replace"))
                    # the agent's own input, or a child of it between fork and exec
                    again = read("/proc/%s/cmdline" % name).decode("utf-8", "replace")
                    is_input = key in INPUT and (agent in argv or agent in again.split("\0"))
                    (agent_input if is_input else leaks)[hit] = [argv, again.split("\0")]
with open(report_path + ".tmp", "w") as handle:
    json.dump({"loops": loops, "programs": programs, "leaks": leaks,
               "agent_input": agent_input}, handle)
os.replace(report_path + ".tmp", report_path)
'''

STOP = r'''
import os, sys, time
stop_path, report_path = sys.argv[1:3]
open(stop_path, "w").close()
deadline = time.monotonic() + 60
while not os.path.exists(report_path) and time.monotonic() < deadline:
    time.sleep(0.1)
with open(report_path) as handle:
    print(handle.read())
'''

OCFEXEC = r'''
import json, os, sys
with open(sys.argv[1]) as handle:
    env = json.load(handle)
os.execve(sys.argv[2], sys.argv[2:], env)
'''

RECORD = r'''
import json, os, sys
auth = "node.session.auth."
found = {}
for root, dirs, files in os.walk(os.path.join("/etc/iscsi/nodes", sys.argv[1])):
    for name in files:
        path = os.path.join(root, name)
        keys, values = [], {}
        with open(path) as handle:
            for line in handle:
                key, _, value = line.partition("=")
                key = key.strip()
                if key.startswith(auth):
                    keys.append(key)
                    if not key.endswith(("password", "password_in")):
                        values[key] = value.strip()
        found[path] = {"mode": "%04o" % (os.stat(path).st_mode & 0o7777), "keys": keys,
                       "values": values}
print(json.dumps(found))
'''

GUEST_LAUNCHER = """#!/usr/bin/python3 -IS
import sys
sys.path[:0] = [%r]
from hasf.agents.iscsi_initiator import main
sys.exit(main())
"""

#: step -> the exit status it must have
EXPECTED = {"iscsid": 0, "scanner": None,
            "no-chap": 2, "wrong": 2, "right": 0, "right-monitor": 0, "record": 0,
            "stop": 0, "mutual": 0, "mutual-stop": 0, "mutual-wrong": 2,
            "file": 0, "file-stop": 0, "file-open": 2, "mutual-file": 0, "mutual-file-stop": 0,
            "cleared": 2, "record-cleared": 0, "scan": 0}
#: the steps that run the agent with a CHAP setting (the scan covers all of them)
CHAP_STEPS = ("wrong", "right", "mutual", "mutual-wrong", "file", "file-open", "mutual-file")


class Outcome:
    def __init__(self, steps, host_stops):
        self.steps = steps            # {name: GuestResult}
        self.host_stops = host_stops  # (LU stop rc, target stop rc)

    @property
    def codes(self):
        return {name: result.returncode for name, result in self.steps.items()}

    def json(self, name):
        return json.loads(self.steps[name].stdout)

    def reason(self, name):
        lines = [line for line in self.steps[name].stderr.splitlines()
                 if line.startswith("ocf-exit-reason:")]
        return lines[-1] if lines else ""

    def shown(self):
        return json.dumps({n: [r.returncode, r.stderr[-600:]] for n, r in self.steps.items()},
                          indent=1)


def _tid(tgtd, iqn):
    match = re.search(r"^Target (\d+): %s$" % re.escape(iqn), tgtd.show(), re.M)
    if not match:
        raise RuntimeError("tgtd shows no target %s" % iqn)
    return match.group(1)


def _accounts(tgtd, iqn):
    """The CHAP accounts of the target (test-only passwords, in tgtadm's argv here)."""
    tid = _tid(tgtd, iqn)
    for args in (("--op", "new", "--mode", "account", "--user", USER, "--password", PASSWORD),
                 ("--op", "bind", "--mode", "account", "--tid", tid, "--user", USER),
                 ("--op", "new", "--mode", "account", "--user", TARGET_USER,
                  "--password", TARGET_PASSWORD),
                 ("--op", "bind", "--mode", "account", "--tid", tid, "--user", TARGET_USER,
                  "--outgoing")):
        done = tgtd.tgtadm(*args)
        if done.returncode != 0:
            raise RuntimeError("tgtadm %s: %s" % (args[1], done.stderr))


def run(image, workdir, host_agents, hasf_lib):
    backing = os.path.join(workdir, "chap-lun.img")
    with open(backing, "wb") as handle:
        handle.truncate(16 << 20)
    with Tgtd() as tgtd, Guest("node1", image=image) as guest:
        target, lun = export_san(host_agents, os.path.join(workdir, "rsc"), tgtd, IQN,
                                 backing, "chap")
        _accounts(tgtd, IQN)
        steps = _steps(guest, hasf_lib, "10.0.2.2:%d" % tgtd.portal_port)
        results = guest.run_batch([argv for _, argv in steps], modules=["iscsi_tcp", "sd_mod"],
                                  timeout=900)
        host_stops = (lun("stop").rc, target("stop").rc)
    return Outcome({name: r for (name, _), r in zip(steps, results)}, host_stops)


def _write(guest, name, text, mode=0o600):
    path = guest.host_path(name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)
    return guest.guest_path(name)


def _steps(guest, hasf_lib, portal):
    lib = guest.copy_in(hasf_lib, "hasf-lib")
    agent = _write(guest, "iscsi", GUEST_LAUNCHER % lib, 0o755)
    scripts = {name: _write(guest, name + ".py", text, 0o644) for name, text in
               (("scanner", SCANNER), ("stop", STOP), ("ocfexec", OCFEXEC),
                ("record", RECORD))}
    secrets = _write(guest, "secrets", "\n".join(SECRETS) + "\n")
    secret_file = _write(guest, "password", FILE_PASSWORD + "\n")
    target_file = _write(guest, "target-password", TARGET_PASSWORD + "\n")
    open_file = _write(guest, "open-password", FILE_PASSWORD + "\n", 0o644)
    stop_path, report = "/run/hasf-scan.stop", "/run/hasf-scan.json"
    base = {"portal": portal, "target": IQN, "udev": "false", "discovery_type": "static"}
    one_way = dict(base, username=USER)
    mutual = dict(one_way, username_in=TARGET_USER)
    serial = [0]

    def ocf(action, **params):
        serial[0] += 1
        env = {"OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": "chap-initiator",
               "HA_RSCTMP": "/run/resource-agents", "OCF_RESKEY_CRM_meta_timeout": "60000",
               "OCF_RESKEY_CRM_meta_interval": "0", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        env.update({"OCF_RESKEY_" + k: str(v) for k, v in params.items()})
        env_file = _write(guest, "env-%d.json" % serial[0], json.dumps(env))
        return Command(("python3", scripts["ocfexec"], env_file, agent, action), timeout=90)

    return [
        ("iscsid", Command(("iscsid",), timeout=30)),
        ("scanner", Command(("python3", scripts["scanner"], secrets, stop_path, report, agent),
                            background=True)),
        ("no-chap", ocf("start", **base)),
        ("wrong", ocf("start", password=WRONG, **one_way)),
        ("right", ocf("start", password=PASSWORD, **one_way)),
        ("right-monitor", ocf("monitor", **base)),
        ("record", ("python3", scripts["record"], IQN)),
        ("stop", ocf("stop", **base)),
        ("mutual", ocf("start", password=PASSWORD, password_in=TARGET_PASSWORD, **mutual)),
        ("mutual-stop", ocf("stop", **base)),
        ("mutual-wrong", ocf("start", password=PASSWORD, password_in=WRONG_TARGET, **mutual)),
        ("file", ocf("start", password_file=secret_file, **one_way)),
        ("file-stop", ocf("stop", **base)),
        ("file-open", ocf("start", password_file=open_file, **one_way)),
        ("mutual-file", ocf("start", password_file=secret_file, password_in_file=target_file,
                            **mutual)),
        ("mutual-file-stop", ocf("stop", **base)),
        ("cleared", ocf("start", **base)),
        ("record-cleared", ("python3", scripts["record"], IQN)),
        ("scan", ("python3", scripts["stop"], stop_path, report)),
    ]
