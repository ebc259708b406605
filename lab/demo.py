"""`make demo`: the seed's Step Seven on a real two-node cluster, then every installed executable.

Each step prints what it did and whether it worked; the run ends with a
summary table and exits non-zero if any step failed.  Steps:
1. the crash test (lab/crashtest.py, one cycle): two Debian 12 node guests
   with corosync + Pacemaker and hasf inside, each powered by its own
   ipmi_sim BMC, configured by `hasf-cib apply lab/hasf-lab.toml` (SAN on
   node2, initiators, o2cb, two OCFS2 stores, vm1 on node1); kill -9 of
   node1's corosync and pacemakerd; node2 fences node1 through
   fence_hasf_ipmi, vm1 runs on node2, node1 boots and rejoins, vm1 migrates
   back; the timeline (printed as it happens), the invariants, fsck.  The
   guests are powered off at the end;
2. install with `make install DESTDIR=<lab root> PYTHON=<this venv's python>`;
3. every OCF agent through ClusterLabs' ocf-tester (VirtualMachine against a
   real qemu domain under qemu:///system);
4. every fence agent against its real peer (IPMI: OpenIPMI ipmi_sim;
   libvirt: a qemu domain): status, reboot verified, status;
5. hasf-cib on the seed scenario: build, verify with crm_verify, and
   crm_simulate of node1 failing and coming back.

`python -m lab.demo --crash-only` runs step 1 alone.
"""

import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from lab import steps  # noqa: E402
from lab import crashtest  # noqa: E402


def say(message):
    print("   " + message, flush=True)


def crash_test():
    """Step Seven: (ok, text) -- the whole scenario comes up, node1 is crashed and fenced,
    vm1 fails over to node2 and migrates back once node1 has rejoined."""
    report = crashtest.run(cycles=1, say=say)
    text = ["cluster: ssh %(ssh_s)ss, both Online %(online_s)ss, storage configured "
            "%(configured_s)ss, vm1 running %(vm_s)ss after power on" % report.cluster,
            report.summary(), "fsck.ocfs2 -fn: %s" % report.fsck]
    text += ["VIOLATION: " + v for v in report.violations]
    text += ["PROBLEM: " + p for p in report.problems]
    return report.ok, "\n".join(text)


def install(root):
    """make install into the lab root: the one install path, as the RPM spec uses it."""
    result = subprocess.run(["make", "-s", "-C", REPO, "install", "DESTDIR=%s" % root,
                             "PYTHON=%s" % sys.executable, "INSTALL_FLAGS=--no-library"],
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise SystemExit("make install failed:\n" + result.stdout + result.stderr)
    return [line.split(" ", 1)[1] for line in result.stdout.splitlines()
            if line.startswith("installed ")]


def run_step(title, func):
    """Run one step, print what it said; (title, ok, seconds)."""
    print("\n== %s" % title, flush=True)
    start = time.monotonic()
    try:
        ok, detail = func()
    except Exception as exc:  # noqa: BLE001 -- a step failing must not hide the others
        ok, detail = False, "%s: %s" % (type(exc).__name__, exc)
    for line in detail.splitlines():
        print("   " + line)
    return title, ok, time.monotonic() - start


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    crashtest.interruptible()
    try:
        return _run(argv)
    except KeyboardInterrupt as exc:
        print("demo interrupted (%s); the lab was stopped" % (exc or "SIGINT"), file=sys.stderr)
        return 130


def _run(argv):
    results = [run_step("Step Seven: crash test on a two-node cluster (kill node1's stack, fence_hasf_ipmi, "
                        "vm1 fails over, node1 rejoins, vm1 migrates back)", crash_test)]
    if "--crash-only" not in argv:
        results += agent_steps()
    print("\n== summary")
    for title, ok, elapsed in results:
        print("%-6s %6.1fs  %s" % ("PASS" if ok else "FAIL", elapsed, title))
    failed = sum(1 for _, ok, _ in results if not ok)
    print("%d passed, %d failed" % (len(results) - failed, failed))
    return 1 if failed or not results else 0


def agent_steps():
    root = tempfile.mkdtemp(prefix="hasf-lab-")
    os.chmod(root, 0o755)  # ocf-tester runs meta-data as nobody
    print("== hasf lab: installing into %s" % root)
    for path in install(root):
        print("   " + path)
    return [run_step(step.title, step.run) for step in steps.plan(root)]


if __name__ == "__main__":
    sys.exit(main())
