#!/usr/bin/env python3
"""Lay out hasf's executables for cluster software (used by `make install`).

Pacemaker, cluster-glue and fenced find agents by path, not by Python entry
points, so each executable is a generated three-line launcher with the target
interpreter in its shebang.  See hasf/launcher.py for what a launcher contains and why.
"""
import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from hasf.launcher import render  # noqa: E402  (the checkout's own copy)


def read_manifest(path):
    """Yield (kind, name, module, function) for each manifest line."""
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        kind, name, target = line.split()
        module, function = target.split(":")
        yield kind, name, module, function


def site_paths(python):
    """The target interpreter's site directories: purelib and platlib (where hasf
    goes), then every directory site.py would add.  Launchers run with -S, so a
    dependency installed by the distribution (Debian's python3-lxml lives in
    /usr/lib/python3/dist-packages, not in purelib /usr/local/...) is found
    only through this list."""
    code = ("import site, sysconfig as s; print(s.get_path('purelib')); "
            "print(s.get_path('platlib')); print('\\n'.join(site.getsitepackages()))")
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout
    return list(dict.fromkeys(out.split()))


def destination(kind, name, args):
    return {
        "ocf": Path(args.ocf_root, "resource.d", "hasf", name),
        "fence": Path(args.sbindir, "fence_hasf_" + name),
        "glue": Path(args.stonith_plugin_dir, "hasf-" + name),
        "bin": Path(args.bindir, name),
    }[kind]


def install_launchers(args):
    paths = list(args.extra_path) + site_paths(args.python)
    for kind, name, module, function in read_manifest(Path(args.manifest)):
        target = Path(args.destdir + str(destination(kind, name, args)))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(render(args.python, module, function, paths, "%s %s" % (kind, name)))
        # cluster-glue refuses group/other-writable plugins: set the mode explicitly.
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
        print("installed", target)


def install_library(args):
    """Install the hasf package itself into the target interpreter's site dir."""
    cmd = [args.python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
           "--no-warn-script-location", "--ignore-installed", "--root", args.destdir or "/",
           str(HERE.parent)]
    print("+", shlex.join(cmd))
    subprocess.run(cmd, check=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--destdir", default="")
    p.add_argument("--python", required=True)
    p.add_argument("--ocf-root", default="/usr/lib/ocf")
    p.add_argument("--sbindir", default="/usr/sbin")
    p.add_argument("--bindir", default="/usr/bin")
    p.add_argument("--stonith-plugin-dir", default="/usr/lib/stonith/plugins/external")
    p.add_argument("--manifest", default=str(HERE / "executables.txt"))
    p.add_argument("--extra-path", action="append", default=[],
                   help="a directory the launchers search first (e.g. a private lib dir)")
    p.add_argument("--no-library", action="store_true",
                   help="only the launchers (the package is already importable by PYTHON)")
    args = p.parse_args(argv)
    if not os.path.isabs(args.python):
        p.error("--python must be an absolute path (it becomes the launchers' shebang)")
    if not args.no_library:
        install_library(args)
    install_launchers(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
