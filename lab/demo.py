"""`make demo`: install hasf, then run every installed executable against a real backend.

Each step prints what it did and whether it worked; the run ends with a
summary table and exits non-zero if any step failed.  Steps:
1. install with `make install DESTDIR=<lab root> PYTHON=<this venv's python>`;
2. every OCF agent through ClusterLabs' ocf-tester (VirtualMachine against a
   real qemu domain under qemu:///system);
3. every fence agent against its real peer (IPMI: OpenIPMI ipmi_sim;
   libvirt: a qemu domain): status, reboot verified, status;
4. hasf-cib on the seed scenario: build, verify with crm_verify, and
   crm_simulate of node1 failing and coming back.
"""

import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from lab import steps  # noqa: E402


def install(root):
    """make install into the lab root: the one install path, as the RPM spec uses it."""
    result = subprocess.run(["make", "-s", "-C", REPO, "install", "DESTDIR=%s" % root,
                             "PYTHON=%s" % sys.executable, "INSTALL_FLAGS=--no-library"],
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise SystemExit("make install failed:\n" + result.stdout + result.stderr)
    return [line.split(" ", 1)[1] for line in result.stdout.splitlines()
            if line.startswith("installed ")]


def main():
    root = tempfile.mkdtemp(prefix="hasf-lab-")
    os.chmod(root, 0o755)  # ocf-tester runs meta-data as nobody
    print("== hasf lab: installing into %s" % root)
    for path in install(root):
        print("   " + path)
    results = []
    for step in steps.plan(root):
        print("\n== %s" % step.title)
        start = time.monotonic()
        try:
            ok, detail = step.run()
        except Exception as exc:  # noqa: BLE001 -- a step failing must not hide the others
            ok, detail = False, "%s: %s" % (type(exc).__name__, exc)
        elapsed = time.monotonic() - start
        for line in detail.splitlines():
            print("   " + line)
        results.append((step.title, ok, elapsed))
    print("\n== summary")
    for title, ok, elapsed in results:
        print("%-6s %6.1fs  %s" % ("PASS" if ok else "FAIL", elapsed, title))
    failed = sum(1 for _, ok, _ in results if not ok)
    print("%d passed, %d failed" % (len(results) - failed, failed))
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
