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
import tempfile
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
    try:
        out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise InstallError("cannot ask %s for its site directories: %s" % (python, exc)) from None
    return list(dict.fromkeys(out.split()))


def destination(kind, name, args):
    return {
        "ocf": Path(args.ocf_root, "resource.d", "hasf", name),
        "fence": Path(args.sbindir, "fence_hasf_" + name),
        "glue": Path(args.stonith_plugin_dir, "hasf-" + name),
        "bin": Path(args.bindir, name),
    }[kind]


def install_launchers(args):
    # --site-path: the package's own site directories, named by the packager (an RPM's
    # %python3_sitelib/%python3_sitearch); else what PYTHON says on this machine.
    paths = list(dict.fromkeys(list(args.extra_path) + (args.site_path or site_paths(args.python))))
    for kind, name, module, function in read_manifest(Path(args.manifest)):
        if args.kinds and kind not in args.kinds:
            continue
        target = Path(args.destdir + str(destination(kind, name, args)))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(render(args.python, module, function, paths, "%s %s" % (kind, name)))
        # cluster-glue refuses group/other-writable plugins: set the mode explicitly.
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
        print("installed", target)


def probe(python, code):
    """rc of `python -c code` (bounded); 127 when the interpreter cannot be run at all."""
    try:
        return subprocess.run([python, "-c", code], capture_output=True, timeout=60).returncode
    except OSError:
        return 127


# setuptools builds a wheel with the separate `wheel` package, or by itself from 70.1 on;
# hasf's pyproject.toml asks for setuptools >= 64 (PEP 660).
CAN_BUILD = ("import setuptools, sys; v = tuple(int(x) for x in setuptools.__version__.split('.')[:2])\n"
             "try:\n import wheel  # noqa\nexcept ImportError:\n sys.exit(v < (70, 1))\n"
             "sys.exit(v < (64, 0))")


def wheel_builder(python):
    """The interpreter that builds hasf's wheel: PYTHON itself when it can, else the one
    running this script (the wheel is pure Python, so any 3.x builds it for any other).
    A plain `python3 -m venv` has pip and setuptools but not wheel: pip would fail deep
    in its output with "invalid command 'bdist_wheel'"."""
    for candidate in dict.fromkeys([python, sys.executable]):
        if probe(candidate, CAN_BUILD) == 0:
            return candidate
    raise InstallError("cannot build hasf's wheel: neither %s nor %s has setuptools >= 64 with "
                       "wheel support (install `wheel`, or setuptools >= 70.1)"
                       % (python, sys.executable))


def install_library(args):
    """Install the hasf package itself into the target interpreter's site dir: build the
    wheel (offline: no build isolation), then PYTHON's pip installs it under DESTDIR."""
    rc = probe(args.python, "import pip")
    if rc == 127:
        raise InstallError("%s cannot be run" % args.python)
    if rc != 0:
        raise InstallError("%s has no pip (python -m ensurepip, or the distribution's "
                           "python3-pip)" % args.python)
    builder = wheel_builder(args.python)
    with tempfile.TemporaryDirectory(prefix="hasf-wheel-") as wheels:
        pip(builder, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", wheels,
            str(HERE.parent))
        built = sorted(Path(wheels).glob("hasf-*.whl"))
        if len(built) != 1:
            raise InstallError("pip wheel made %s, not one hasf wheel" % [p.name for p in built])
        pip(args.python, "install", "--no-deps", "--no-index", "--ignore-installed",
            "--no-warn-script-location", "--root", args.destdir or "/", str(built[0]))


def pip(python, *words):
    """Run `python -m pip WORDS`; its own output only when it fails (as InstallError)."""
    cmd = [python, "-m", "pip", "--disable-pip-version-check", "--quiet"] + list(words)
    print("+", shlex.join(cmd))
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise InstallError("%s failed (rc %d):\n%s" % (shlex.join(cmd[:4]), result.returncode,
                                                       (result.stdout + result.stderr)[-4000:]))


class InstallError(Exception):
    """What is missing or failed, in words for the person who ran `make install`."""


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
    p.add_argument("--site-path", action="append", default=[],
                   help="a site directory the launchers import from, instead of asking PYTHON "
                        "(a package's sitelib and sitearch)")
    p.add_argument("--kinds", type=lambda text: set(text.split(",")), default=None,
                   help="only these kinds of the manifest, comma-separated (ocf,fence,glue,bin)")
    p.add_argument("--no-library", action="store_true",
                   help="only the launchers (the package is already importable by PYTHON)")
    args = p.parse_args(argv)
    if not os.path.isabs(args.python):
        p.error("--python must be an absolute path (it becomes the launchers' shebang)")
    try:
        if not args.no_library:
            install_library(args)
        install_launchers(args)
    except InstallError as exc:
        print("make install: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
