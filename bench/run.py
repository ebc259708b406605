#!/usr/bin/env python3
"""`make bench`: run every bench/bench_*.py and print their side-by-side reports.

Each module has `run() -> Report`; one that cannot run here (a missing tool,
a daemon that would not start) prints why instead of a figure.
"""

import importlib
import os
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv):
    repo = os.path.dirname(HERE)  # the lab's daemons and guests (lab.*), the tests' agents
    sys.path[:0] = [HERE, repo, os.path.join(repo, "tests")]
    names = argv[1:] or sorted(f[:-3] for f in os.listdir(HERE)
                               if f.startswith("bench_") and f.endswith(".py"))
    failed = 0
    for name in names:
        try:
            importlib.import_module(name).run().print()
        except Exception:  # noqa: BLE001 -- report and go on with the other benches
            failed += 1
            print("\n== %s could not run ==" % name)
            traceback.print_exc()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
