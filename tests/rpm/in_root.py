"""Run commands as if an RPM-installed root were this machine (tests/test_rpm.py).

Usage, in a private mount namespace:  unshare -m --propagation private python3 in_root.py ROOT
with a JSON list of {"argv": [...], "env": {...}, "stdin": "..."} on stdin; prints a JSON
list of {"rc", "stdout", "stderr"}.

ROOT/usr is laid over /usr with overlayfs (ROOT's files win), so every installed file is at
the path the RPM gave it -- launchers, their shebang, the site-packages they list, the OCF
directory -- while the interpreter and the distribution packages they need (python3-lxml,
python3-libvirt, pacemaker-cli) are this machine's.  No chroot: nothing needs copying.
"""

import json
import subprocess
import sys


def main():
    root = sys.argv[1]
    subprocess.run(["mount", "-t", "overlay", "hasf-rpm-root", "-o",
                    "lowerdir=%s/usr:/usr" % root, "/usr"], check=True, timeout=30)
    results = []
    for command in json.load(sys.stdin):
        try:
            done = subprocess.run(command["argv"], input=command.get("stdin", ""),
                                  env=command["env"], capture_output=True, text=True,
                                  timeout=120)
            results.append({"rc": done.returncode, "stdout": done.stdout,
                            "stderr": done.stderr})
        except (OSError, subprocess.TimeoutExpired) as exc:
            results.append({"rc": None, "stdout": "", "stderr": repr(exc)})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
