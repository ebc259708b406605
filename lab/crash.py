"""The seed's Step Seven on the lab cluster: kill node1's cluster stack, watch it get fenced and return.

Why: "By manually killing the heartbeat processes on node 1 we can simulate
a system crash ... node 1 will reboot due to a STONITH operation initiated
on the DC ... Node 1 will reboot into the cluster."  ``crash()`` does exactly
that on a running ``lab.cluster.Cluster``: ``kill -9`` of the victim's
corosync and pacemakerd (their pids, recorded by the node runner), then it
watches, and asserts, from sources that do not all come from Pacemaker:

* the victim's power, from the host: its qemu process ends (sampled every
  50 ms) and a new one starts through the BMC's start script (ipmi_sim's
  power on), and the BMC reports power on at the end;
* a new boot id in the victim (its runner records every boot in the share);
* the survivor's fencing history: a successful reboot of the victim
  carried out by the survivor, completed after the kill;
* the victim Online again in the survivor's ``crm_mon``.

The timeline is in seconds after the kill: victim seen gone, fence requested
and done (from the survivor's pacemaker.log, whose clock is mapped onto the
host's with a measured skew), power off and on (host-side), Online again,
and where the trivial resource ran.  A failed check is a problem in the
result (the run goes on and reports them all), not an exception; only a
cluster not ready to start with raises ``CrashTestError``.
"""

import calendar
import dataclasses
import re
import threading
import time
import xml.etree.ElementTree as ET

from lab.node import NodeError
from lab.process import WaitTimeout, wait_until


class CrashTestError(RuntimeError):
    """The cluster was not in a state to run the crash test."""


@dataclasses.dataclass
class CrashResult:
    """What one crash cycle saw: events (seconds after the kill), problems, raw facts."""

    victim: str
    survivor: str
    events: dict = dataclasses.field(default_factory=dict)
    problems: list = dataclasses.field(default_factory=list)
    facts: dict = dataclasses.field(default_factory=dict)
    diagnostics: str = ""

    @property
    def ok(self):
        return not self.problems

    def timeline(self):
        """The timeline as lines, in the order things happened.  Power times are the
        host's own; log times carry the clock-skew measurement's error (± half the
        ssh round trip in facts["skew_rtt_s"])."""
        lines = ["%8s  %s" % ("t+%.1fs" % t if t is not None else "never", what)
                 for what, t in sorted(self.events.items(),
                                       key=lambda item: (item[1] is None, item[1] or 0))]
        return "\n".join(lines)


class PowerWatch(threading.Thread):
    """Samples a node's qemu (its power, as the host sees it) every 50 ms."""

    def __init__(self, bmc, interval=0.05):
        super().__init__(daemon=True)
        self.bmc, self.interval = bmc, interval
        self.first_pid = bmc.qemu_pid()
        self.off_at = None       # monotonic time the first qemu was seen gone
        self.on_at = None        # monotonic time a new qemu was seen alive
        self.new_pid = None
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            pid = self.bmc.qemu_pid()
            now = time.monotonic()
            if self.off_at is None and pid != self.first_pid:
                self.off_at = now
            if self.off_at is not None and self.on_at is None and pid not in (None, self.first_pid):
                self.on_at, self.new_pid = now, pid
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join(5)


class BootWatch(threading.Thread):
    """Software fencing's witness (fence_hasf_demo): the node reboots inside the same qemu,
    so "off" is its own sampler going silent in the old boot and "on" the first sample of
    a new boot (lab/invariants.py's Witness of that node)."""

    SILENT_S = 3.0

    def __init__(self, witness, boot_id, interval=0.2):
        super().__init__(daemon=True)
        self.witness, self.boot_id, self.interval = witness, boot_id, interval
        self.off_at = None       # monotonic time of the last sample of the old boot
        self.on_at = None        # monotonic time of the first sample of a new boot
        self.new_pid = None
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            sample, now = self.witness.latest, time.monotonic()
            if sample is not None and self.off_at is None:
                if sample["boot"] != self.boot_id:
                    self.off_at = sample["at"]
                elif now - sample["at"] > self.SILENT_S:
                    self.off_at = sample["at"]
            if sample is not None and sample["boot"] != self.boot_id and self.on_at is None:
                self.on_at = sample["at"]
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join(5)


def clock_skew(node):
    """Guest wall clock minus host wall clock (s), from one ssh round trip."""
    before = time.time()
    guest = float(node.ssh(["date", "+%s.%N"], timeout=20, check=True).stdout)
    after = time.time()
    return guest - (before + after) / 2, after - before


_LOG_TIME = re.compile(r"^(\w{3} \d{2} \d{2}:\d{2}:\d{2})\.(\d{3}) ")


def log_events(text, victim, survivor, since_wall, skew):
    """First time (host wall clock) of each fencing milestone in a pacemaker.log."""
    year = time.gmtime(since_wall).tm_year
    patterns = {
        "%s seen gone" % victim: "Node %s state is now lost" % victim,
        "fence requested": "Requesting fencing (reboot) of node %s" % victim,
        "fence done": "Operation 'reboot' targeting %s by %s" % (victim, survivor),
    }
    found = {}
    for line in text.splitlines():
        match = _LOG_TIME.match(line)
        if not match:
            continue
        stamp = calendar.timegm(time.strptime("%d %s" % (year, match.group(1)),
                                              "%Y %b %d %H:%M:%S")) + int(match.group(2)) / 1000
        host = stamp - skew
        if host < since_wall - 1:
            continue
        for name, needle in patterns.items():
            if name not in found and needle in line and (name != "fence done" or ": OK" in line):
                found[name] = host
    return found


def fence_history(node, victim):
    """The survivor's fencing history of ``victim``: list of fence_event attribute dicts."""
    result = node.ssh(["stonith_admin", "--history", victim, "--output-as=xml"], timeout=30)
    if result.returncode != 0:
        raise NodeError("stonith_admin --history rc=%d: %s" % (result.returncode, result.stderr))
    return [dict(e.attrib) for e in ET.fromstring(result.stdout).iter("fence_event")]


def _completed(event):
    """A fence_event's completion time (wall clock, whole seconds; 0 if unknown)."""
    try:
        return calendar.timegm(time.strptime(event.get("completed", ""), "%Y-%m-%d %H:%M:%SZ"))
    except ValueError:
        return 0


def crash(cluster, victim=None, survivor=None, timeout=420, say=None, invariants=None,
          markers=None, index=0):
    """One kill/fence/failover/rejoin/failback cycle on a running cluster; a CrashResult.

    invariants: a started lab.invariants.Invariants (one is made for this cycle if None);
    markers: {index: hex} written through vm1 in earlier cycles, checked again here
    (this cycle's marker is added)."""
    say = say or (lambda message: None)
    victim = victim or cluster.names[0]
    survivor = survivor or [n for n in cluster.names if n != victim][0]
    own = invariants is None
    if own:
        from lab.invariants import Invariants
        invariants = Invariants(cluster, say=say).start()
    markers = {} if markers is None else markers
    try:
        return _cycle(cluster, victim, survivor, timeout, say, invariants, markers, index)
    finally:
        if own:
            invariants.stop()


def _wait_vm_on(invariants, node, timeout):
    """Wait until the witness of ``node`` sees vm1 running there."""
    def seen():
        sample = invariants.witnesses[node].fresh(time.monotonic())
        return sample is not None and sample.vm_running
    try:
        wait_until(seen, timeout, 0.5, "vm1 running on %s (its own /proc)" % node)
    except WaitTimeout as exc:
        raise CrashTestError(str(exc)) from None


def _cycle(cluster, victim, survivor, timeout, say, invariants, markers, index):
    node, peer, bmc = cluster.nodes[victim], cluster.nodes[survivor], cluster.bmcs[victim]
    vm = cluster.vm
    result = CrashResult(victim, survivor)
    if sorted(cluster.online(survivor)) != sorted(cluster.names):
        raise CrashTestError("not every node is Online before the crash test")
    boots = node.boots()
    if not boots or "corosync" not in boots[-1]:
        raise CrashTestError("%s recorded no running cluster stack" % victim)
    _wait_vm_on(invariants, victim, 120)
    markers[index] = vm.write_marker(node, index)
    boot, starts = boots[-1], len(bmc.power_log())
    skew, rtt = clock_skew(peer)
    result.facts.update(boot_id_before=boot["boot_id"], clock_skew_s=round(skew, 3),
                        skew_rtt_s=round(rtt, 3), qemu_pid_before=bmc.qemu_pid(),
                        markers_written=len(markers))
    power = cluster.lab.fence_kind == "power"
    watch = PowerWatch(bmc) if power else BootWatch(invariants.witnesses[victim],
                                                    boot["boot_id"])
    watch.start()
    say("cycle %d: marker %d written through vm1 on %s; kill -9 corosync (pid %d) and "
        "pacemakerd (pid %d) on %s" % (index + 1, index, victim, boot["corosync"],
                                        boot["pacemakerd"], victim))
    node.ssh(["kill", "-9", str(boot["corosync"]), str(boot["pacemakerd"])], timeout=30,
             check=True)
    t0, t0_wall = time.monotonic(), time.time()
    try:
        online_at = _watch(cluster, result, invariants, watch, t0, timeout, say, markers)
    finally:
        watch.stop()
        invariants.fenced[victim] = None
    if not power:
        for name, when in (("%s down (its sampler silent)" % victim, watch.off_at),
                           ("%s up again (new boot id)" % victim, watch.on_at)):
            if when is not None:
                result.events[name] = round(when - t0, 1)
    elif watch.off_at is not None:
        result.events["%s power off (qemu gone)" % victim] = round(watch.off_at - t0, 1)
    if power and watch.on_at is not None:
        # a BMC's start script logs its own start: sharper than the 50 ms sampler
        logged = [e["mono"] for e in bmc.power_log()[starts:] if e["pid"] == watch.new_pid]
        result.events["%s power on" % victim] = round(
            min(logged + [watch.on_at]) - t0, 1)
    _check(cluster, result, watch, boot, starts, t0_wall, skew, online_at)
    _check_markers(cluster, result, markers)
    return result


def _watch(cluster, result, invariants, watch, t0, timeout, say, markers):
    """Follow the cycle until vm1 is back on the victim (or the timeout); the monotonic
    time the victim was Online again in the survivor's view, or None."""
    victim, survivor = result.victim, result.survivor
    events = result.events
    vm = cluster.vm
    online_at = None
    next_status = 0.0
    deadline = t0 + timeout

    def seen(name, now):
        if name not in events:
            events[name] = round(now - t0, 1)
            say("t+%.1fs %s" % (now - t0, name))

    def new_boot(sample):
        return sample["boot"] != result.facts["boot_id_before"]

    wanted = set(cluster.lab.stores.values())
    victim_events = (
        ("%s initiator logged in" % victim, lambda x: new_boot(x) and x["iscsi"]),
        ("%s o2cb cluster registered" % victim,
         lambda x: new_boot(x) and any(x["o2cb"].values())),
        ("%s stores mounted" % victim,
         lambda x: new_boot(x) and bool(wanted) and wanted <= set(x["ocfs2"])))
    while time.monotonic() < deadline:
        if watch.off_at is not None and online_at is None:
            invariants.fenced[victim] = watch.off_at
        away = invariants.first(survivor, t0, lambda x: x.vm_running)
        if away is not None:
            seen("vm1 running on %s" % survivor, away["at"])
            if "markers read on %s" % survivor not in result.facts:
                result.facts["markers read on %s" % survivor] = {
                    i: vm.read_marker(cluster.nodes[survivor], i) == m for i, m in markers.items()}
        for name, predicate in victim_events:
            found = invariants.first(victim, t0, predicate)
            if found is not None:
                seen(name, found["at"])
        since = t0 if away is None else away["at"]
        back = invariants.first(victim, since, lambda x: new_boot(x) and x.vm_running)
        if back is not None:
            seen("vm1 back on %s" % victim, back["at"])
            result.facts["vm1 came back by live migration"] = any(
                q["incoming"] for q in back["vm"])
            break
        now = time.monotonic()
        if now >= next_status:
            next_status = now + 2.0
            try:
                state = cluster.status(survivor)["nodes"].get(victim, {})
            except Exception:  # noqa: BLE001 -- a busy node: ask again
                state = {}
            up = state.get("online") and not state.get("unclean") and not state.get("pending")
            if up and watch.on_at is not None and online_at is None:
                online_at = time.monotonic()
                invariants.fenced[victim] = None
                seen("%s Online again" % victim, online_at)
        time.sleep(0.5)
    return online_at


def _check_markers(cluster, result, markers):
    victim, survivor = result.victim, result.survivor
    read = result.facts.get("markers read on %s" % survivor)
    if read is None:
        result.problems.append("vm1 never ran on %s: its markers were not read there" % survivor)
    elif not all(read.values()):
        result.problems.append("markers changed on %s: %s" % (survivor, read))
    if "vm1 back on %s" % victim in result.events:
        try:
            back = {i: cluster.vm.read_marker(cluster.nodes[victim], i) == m
                    for i, m in markers.items()}
        except Exception as exc:  # noqa: BLE001 -- reported as a problem
            back = {"error": str(exc)}
        result.facts["markers read on %s" % victim] = back
        if not all(v is True for v in back.values()):
            result.problems.append("markers changed on %s after failback: %s" % (victim, back))


def _check(cluster, result, watch, boot, starts, t0_wall, skew, online_at):
    victim, survivor = result.victim, result.survivor
    node, peer, bmc = cluster.nodes[victim], cluster.nodes[survivor], cluster.bmcs[victim]
    problems = result.problems
    try:
        log = peer.ssh(["cat", "/var/log/pacemaker/pacemaker.log"], timeout=60).stdout
        for name, wall in log_events(log, victim, survivor, t0_wall, skew).items():
            result.events[name] = round(wall - t0_wall, 1)
    except NodeError as exc:
        problems.append("cannot read %s's pacemaker.log: %s" % (survivor, exc))
    for name in ("%s seen gone" % victim, "fence requested", "fence done",
                 "vm1 running on %s" % survivor, "%s Online again" % victim,
                 "%s stores mounted" % victim, "vm1 back on %s" % victim):
        result.events.setdefault(name, None)
    for name in ("vm1 running on %s" % survivor, "%s stores mounted" % victim,
                 "vm1 back on %s" % victim):
        if result.events[name] is None:
            problems.append("never seen: %s" % name)
    if result.events["vm1 back on %s" % victim] is not None and \
            not result.facts.get("vm1 came back by live migration"):
        problems.append("vm1 came back to %s by a restart, not a live migration" % victim)
    if cluster.lab.fence_kind != "power":
        if watch.off_at is None or watch.on_at is None:
            problems.append("%s was not seen going down and booting again" % victim)
    elif watch.off_at is None:
        problems.append("%s's qemu never ended: its power was not cut" % victim)
    elif watch.on_at is None or len(bmc.power_log()) <= starts:
        problems.append("%s was not powered on again through its BMC" % victim)
    try:
        if not bmc.power_status():
            problems.append("%s's BMC reports power off at the end" % victim)
    except RuntimeError as exc:
        problems.append("%s's BMC does not answer: %s" % (victim, exc))
    boots = node.boots()
    result.facts["boot_id_after"] = boots[-1]["boot_id"] if boots else None
    if result.facts["boot_id_after"] == boot["boot_id"]:
        problems.append("%s did not boot again (same boot id)" % victim)
    if online_at is None:
        problems.append("%s did not come back Online in %s's view" % (victim, survivor))
    try:
        history = fence_history(peer, victim)
    except (NodeError, ET.ParseError) as exc:
        history = []
        problems.append("no fencing history from %s: %s" % (survivor, exc))
    result.facts["fence_history"] = history
    done = [e for e in history if e.get("action") == "reboot" and e.get("status") == "success"
            and e.get("delegate") == survivor and _completed(e) >= t0_wall - 2]
    # pacemaker-fenced keeps one history entry per target and action once the target
    # has rejoined (measured: the second cycle's reboot replaced nothing, the first's
    # entry stayed), so the log's completion line is the per-cycle witness
    if not done and result.events.get("fence done") is None:
        problems.append("neither %s's fencing history nor its log shows a successful reboot "
                        "of %s by %s after the kill: %s" % (survivor, victim, survivor, history))
    if problems:
        result.diagnostics = cluster.diagnostics()
