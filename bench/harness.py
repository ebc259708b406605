"""Timing whole processes, side by side with the ClusterLabs anchor.

Agents are exec'd for every monitor of every resource, so what matters is
the wall and CPU time of one complete process, interpreter start-up included.
`measure()` runs a command repeatedly (after warm-up runs) and keeps the
median wall time and the median CPU time (user+sys of the child, from wait4);
`Report` prints rows with the hasf/anchor ratio and the target.
"""

import os
import statistics
import subprocess
import time


class Stats:
    def __init__(self, label, walls, cpus, rcs):
        self.label = label
        self.wall = statistics.median(walls)
        self.cpu = statistics.median(cpus)
        self.rcs = sorted(set(rcs))
        self.runs = len(walls)

    def __repr__(self):
        return "%s: wall %.1f ms, cpu %.1f ms, rc %s (n=%d)" % (
            self.label, self.wall * 1000, self.cpu * 1000, self.rcs, self.runs)


def run_once(argv, env=None, stdin=None):
    """(wall seconds, cpu seconds, rc) of one complete run of argv."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if stdin:
        proc.stdin.write(stdin.encode())
        proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, proc.returncode


def measure(label, argv, env=None, runs=20, warmup=3, stdin=None, setup=None):
    """Median wall/cpu of `runs` runs; `setup()` (untimed) runs before each one."""
    for _ in range(warmup):
        if setup:
            setup()
        run_once(argv, env, stdin)
    walls, cpus, rcs = [], [], []
    for _ in range(runs):
        if setup:
            setup()
        wall, cpu, rc = run_once(argv, env, stdin)
        walls.append(wall)
        cpus.append(cpu)
        rcs.append(rc)
    return Stats(label, walls, cpus, rcs)


def interleaved(ours, anchor, runs=40, warmup=3):
    """Two commands measured in alternation, each given as (label, argv, env, stdin):
    load that drifts during the run (a busy machine) falls on both alike.  Returns
    (Stats of ours, Stats of anchor)."""
    samples = ([], [], []), ([], [], [])
    for round_ in range(warmup + runs):
        for (_label, argv, env, stdin), sample in zip((ours, anchor), samples):
            wall, cpu, rc = run_once(argv, env, stdin)
            if round_ >= warmup:
                for values, value in zip(sample, (wall, cpu, rc)):
                    values.append(value)
    return tuple(Stats(spec[0], *sample) for spec, sample in zip((ours, anchor), samples))


def timed(label, func, runs=5):
    """Median wall time of calling func() (for in-process or multi-step work)."""
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        walls.append(time.perf_counter() - start)
    return Stats(label, walls, [0.0] * runs, [0] * runs)


class Report:
    def __init__(self, title):
        self.title = title
        self.rows = []

    def compare(self, what, hasf, anchor, target=None):
        """One row: hasf vs anchor, measured in this same run."""
        wall_ratio = hasf.wall / anchor.wall if anchor.wall else float("inf")
        cpu_ratio = hasf.cpu / anchor.cpu if anchor.cpu else float("inf")
        verdict = ""
        if target is not None:
            verdict = "meets target" if wall_ratio <= target else "MISSES target"
            verdict += " (<= %.2fx)" % target
        self.rows.append("%-38s hasf %7.1f ms (cpu %6.1f) | %-26s %7.1f ms (cpu %6.1f) | "
                         "wall %.2fx cpu %.2fx %s" % (
                             what, hasf.wall * 1000, hasf.cpu * 1000, anchor.label,
                             anchor.wall * 1000, anchor.cpu * 1000, wall_ratio, cpu_ratio, verdict))

    def single(self, what, stats, limit=None):
        verdict = ""
        if limit is not None:
            verdict = "meets target" if stats.wall <= limit else "MISSES target"
            verdict += " (<= %.1f s)" % limit
        self.rows.append("%-38s %9.1f ms %s" % (what, stats.wall * 1000, verdict))

    def note(self, text):
        self.rows.append("  note: " + text)

    def print(self):
        print("\n== %s ==" % self.title)
        for row in self.rows:
            print(row)
