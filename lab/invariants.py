"""The crash test's witnesses: what each node's kernel says, sampled throughout, and the invariants.

Why: the point of fencing is that two nodes never write one disk, and
Pacemaker's own view is exactly what a split brain gets wrong.  So the lab
asks the nodes themselves, once a second, over a long-lived ssh session per
node running SAMPLER (a small Python loop in the node): the boot id, every
process of vm1's qemu (from /proc: its pid, whether it was started as a
migration target, and libvirt's state for it -- a live migration's target
is "paused" until the switch-over), the OCFS2 mounts (/proc/1/mountinfo),
the o2cb nodes registered in configfs, and the iSCSI sessions in sysfs.
The host adds the one fact no node can give about itself: whether the
node's qemu (its power) is alive at all.

``Witness`` keeps each node's newest sample; ``Invariants.tick()`` is called
twice a second and records a violation when
* vm1 runs on both nodes in two successive samples of each (a live
  migration's switch-over lasts less than a sample; a false "stopped" that
  lets vm1 start on the survivor while the victim's copy still runs does
  not), or
* a node has an OCFS2 volume mounted while it is fenced: between the
  survivor's fencing of it (its power seen off) and its rejoining (Online
  in the survivor's view).
A node without power runs nothing and mounts nothing.  A powered node whose
sampler has said nothing for STALE_S (booting, or its ssh session lost) is
"unknown": no evidence either way, so it neither clears nor convicts -- a
violation needs both nodes' own reports.  (Its sampler is back within
seconds of sshd starting, before its cluster stack, so a node cannot start
vm1 or mount a store unseen after a reboot.)  But the checks are blind on
such a node, so a stretch of "unknown" while powered that lasts longer than
BLIND_LIMIT_S (a boot under TCG takes 30-50 s to sshd) is reported in
``blind``: the crash test counts it as a problem, never as a pass.
"""

import json
import subprocess
import threading
import time

STALE_S = 3.5
#: longest stretch a powered node may go unsampled (boot included) before the run
#: says the invariants were not checked on it
BLIND_LIMIT_S = 120.0

SAMPLER = r'''
import json, os, re, sys, time
NAME = sys.argv[1]
STATE = re.compile(r"<domstatus state='(\w+)'")
def qemus():
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"qemu-system-x86_64") and \
                any(a.startswith(b"guest=" + NAME.encode()) for a in argv):
            found.append({"pid": int(pid), "incoming": b"-incoming" in argv})
    return found
def state():
    try:
        with open("/run/libvirt/qemu/%s.xml" % NAME) as f:
            m = STATE.search(f.read(4096))
            return m.group(1) if m else "unknown"
    except FileNotFoundError:
        return None
    except OSError:
        return "unknown"
def listing(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []
boot = open("/proc/sys/kernel/random/boot_id").read().strip()
while True:
    mounts = []
    with open("/proc/1/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split(" ", 1)[0] == "ocfs2":
                mounts.append(left.split()[4])
    o2cb = {c: listing("/sys/kernel/config/cluster/%s/node" % c)
            for c in listing("/sys/kernel/config/cluster")}
    print(json.dumps({"boot": boot, "vm": qemus(), "vm_state": state(), "ocfs2": mounts,
                      "o2cb": o2cb, "iscsi": listing("/sys/class/iscsi_session")}), flush=True)
    time.sleep(1)
'''


class Sample(dict):
    """One node's report (SAMPLER's JSON) plus ``at``, the host's monotonic receive time."""

    @property
    def vm_running(self):
        """vm1's qemu exists here and is not a paused migration target."""
        if not self["vm"]:
            return False
        return self["vm_state"] != "paused"


class Witness(threading.Thread):
    """Keeps a sampler running in one node (restarted whenever the node answers again)."""

    def __init__(self, node, vm="vm1"):
        super().__init__(daemon=True, name="witness-" + node.name)
        self.node, self.vm = node, vm
        self.latest = None
        self.history = []           # every sample, for the report's timeline
        self._halt = threading.Event()
        self._proc = None

    def run(self):
        while not self._halt.is_set():
            argv = self.node.ssh_argv(["python3", "-u", "-c", SAMPLER, self.vm], connect_timeout=3)
            try:
                self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                              text=True)
                for line in self._proc.stdout:
                    try:
                        sample = Sample(json.loads(line))
                    except ValueError:
                        continue
                    sample["at"] = time.monotonic()
                    self.latest = sample
                    self.history.append(sample)
                    if self._halt.is_set():
                        break
            except OSError:
                pass
            finally:
                self._end_proc()
            self._halt.wait(2)

    def _end_proc(self):
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            proc.wait()

    def fresh(self, now):
        """The newest sample if it is at most STALE_S old, else None."""
        sample = self.latest
        return sample if sample is not None and now - sample["at"] <= STALE_S else None

    def stop(self):
        self._halt.set()
        self._end_proc()
        self.join(10)


class Invariants(threading.Thread):
    """Evaluates the invariants over both nodes' witnesses and their power (module
    docstring), twice a second in its own thread: the crash test's own waits (a crm_mon
    that blocks while Pacemaker is busy) leave no gap in the checks."""

    INTERVAL = 0.5

    def __init__(self, cluster, vm="vm1", say=None):
        super().__init__(daemon=True, name="invariants")
        self._halt = threading.Event()
        self.ticks = 0
        self.cluster = cluster
        self.witnesses = {n: Witness(cluster.nodes[n], vm) for n in cluster.names}
        self.violations = []
        #: node -> the monotonic time it was fenced (its power seen off, or its sampler
        #: silent in the old boot), while it counts as fenced; None when it does not
        self.fenced = {}
        self._pids = {}             # node -> (qemu pid, monotonic time it was powered on)
        self.say = say or (lambda message: None)
        self._both_seen = None      # (sample ats) of the last tick that saw vm on both
        self._t0 = time.monotonic()
        self._unknown_since = {}    # node -> monotonic time its view became "unknown"
        #: stretches longer than BLIND_LIMIT_S in which a powered node said nothing
        self.blind = []

    def start(self):
        for witness in self.witnesses.values():
            witness.start()
        threading.Thread.start(self)
        return self

    def run(self):
        while not self._halt.is_set():
            self.tick()
            self.ticks += 1
            self._halt.wait(self.INTERVAL)

    def stop(self):
        self._halt.set()
        if self.is_alive():
            self.join(10)
        for witness in self.witnesses.values():
            witness.stop()
        now = time.monotonic()
        for name in list(self._unknown_since):
            self._end_unknown(name, now)

    def _track_unknown(self, views, now):
        """Open and close each node's "unknown while powered" stretch."""
        for name, (power, _) in views.items():
            if power == "unknown":
                self._unknown_since.setdefault(name, now)
            else:
                self._end_unknown(name, now)

    def _end_unknown(self, name, now):
        since = self._unknown_since.pop(name, None)
        if since is not None and now - since > BLIND_LIMIT_S:
            self.blind.append("%s had power but its sampler said nothing for %.0f s "
                              "(t+%.1fs to t+%.1fs): the invariants were not checked on it"
                              % (name, now - since, since - self._t0, now - self._t0))

    def first(self, name, since, predicate):
        """The first sample of ``name`` received after ``since`` (monotonic) for which
        predicate(sample) holds, or None: events are timed by the node's own report."""
        for sample in list(self.witnesses[name].history):
            if sample["at"] > since and predicate(sample):
                return sample
        return None

    def view(self, name, now):
        """("off", None) | ("unknown", None) | ("up", Sample).  A sample taken before the
        node's current power-on (its qemu now is another) says nothing about it now:
        measured, a sample from just before a power cycle was still fresh after it."""
        pid = self.cluster.bmcs[name].qemu_pid()
        if pid is None:
            return "off", None
        known = self._pids.get(name)
        if known is None:
            self._pids[name] = (pid, float("-inf"))   # powered before we looked
        elif known[0] != pid:
            self._pids[name] = (pid, now)             # powered on (again) just now
        sample = self.witnesses[name].fresh(now)
        if sample is not None and sample["at"] < self._pids[name][1]:
            sample = None
        return ("up", sample) if sample is not None else ("unknown", None)

    def violation(self, text):
        stamp = round(time.monotonic() - self._t0, 1)
        entry = "t+%.1fs (run): %s" % (stamp, text)
        if entry not in self.violations:
            self.violations.append(entry)
            self.say("VIOLATION " + entry)

    def tick(self):
        now = time.monotonic()
        views = {n: self.view(n, now) for n in self.cluster.names}
        self._track_unknown(views, now)
        running = [n for n, (power, s) in views.items() if power == "up" and s.vm_running]
        if len(running) == len(views):
            ats = tuple(views[n][1]["at"] for n in running)
            if self._both_seen is not None and all(a > b for a, b in zip(ats, self._both_seen)):
                self.violation("vm1's qemu runs on %s at once (pids %s)" % (
                    " and ".join(running), [[q["pid"] for q in views[n][1]["vm"]]
                                            for n in running]))
            elif self._both_seen is None:
                self._both_seen = ats
        else:
            self._both_seen = None
        for name, since in self.fenced.items():
            power, sample = views[name]
            if since is not None and power == "up" and sample is not None and \
                    sample["at"] > since and sample["ocfs2"]:
                self.violation("%s mounts OCFS2 (%s) while fenced" % (
                    name, ", ".join(sample["ocfs2"])))
        return views
