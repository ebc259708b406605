"""Agents that exist only for the tests, and launchers for any hasf entry point.

Launchers made here run the way installed agents run on a node: a regular
(non-editable) install of this checkout's hasf (the lab's, lab/hasf_lib.py),
`#!/usr/bin/python3 -IS`, explicit sys.path.  The install and the copy of
these agents sit in world-readable temp directories, because ocf-tester runs
`meta-data` as `nobody`, and a CI checkout (or its venv) may live where
`nobody` cannot read.
"""

import os
import sys

# This package is also imported by the test agents themselves, at every exec:
# heavier modules are imported inside the functions that need them.
TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TESTS_DIR)
_site = None


def site_dirs():
    """This interpreter's own site directories (lxml, psutil, libvirt-python live there)."""
    import sysconfig

    return list(dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]))


def hasf_site():
    """[lib, tests]: the lab's world-readable install of hasf (lab.hasf_lib) and a
    world-readable copy of the test agents (once)."""
    global _site
    if _site is None:
        import atexit
        import shutil
        import tempfile

        from lab.hasf_lib import hasf_lib

        root = tempfile.mkdtemp(prefix="hasf-testagents-")
        os.chmod(root, 0o755)
        atexit.register(shutil.rmtree, root, True)
        shutil.copytree(os.path.join(TESTS_DIR, "testagents"),
                        os.path.join(root, "tests", "testagents"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        _site = [hasf_lib(), os.path.join(root, "tests")]
    return _site


def write_launcher(path, module, function="main", what="test launcher"):
    """An executable at path that runs module:function like an installed hasf executable."""
    from hasf.launcher import render

    python = os.path.realpath(sys.executable)  # the base interpreter: runnable by anyone
    with open(path, "w") as handle:
        handle.write(render(python, module, function, hasf_site() + site_dirs(), what))
    os.chmod(path, 0o755)
    return path


def install_test_agent(directory, name="HasfTest",
                       module="testagents.hasf_test_agent", function="main"):
    """Write an executable launcher for an agent (same template as make install)."""
    os.makedirs(directory, exist_ok=True)
    return write_launcher(os.path.join(directory, name), module, function)
