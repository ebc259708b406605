"""What several benches share: a non-editable copy of hasf and launchers for it.

The development venv installs hasf editable, whose import hook costs ~9 ms per
process; cluster nodes install it normally.  So benches install the package
into a private directory and time launchers made by the same template
`make install` uses.
"""

import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_root = None


def install_root():
    """A directory holding a regular (non-editable) install of hasf; made once per run."""
    global _root
    if _root is None:
        _root = tempfile.mkdtemp(prefix="hasf-bench-")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--no-build-isolation", "--target", os.path.join(_root, "lib"), REPO],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _root


def launcher(name, module, function="main", extra_paths=()):
    """An executable launcher for module:function in the bench install."""
    import sysconfig

    from hasf.launcher import render

    root = install_root()
    paths = [os.path.join(root, "lib")] + list(extra_paths) + list(dict.fromkeys(
        [sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]))
    path = os.path.join(root, name)
    with open(path, "w") as handle:
        handle.write(render(sys.executable, module, function, paths, "bench"))
    os.chmod(path, 0o755)
    return path


def ocf_env(**params):
    """An environment like pacemaker-execd's for an OCF agent call."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf",
           "OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1",
           "OCF_RESOURCE_INSTANCE": "bench", "OCF_RESKEY_CRM_meta_timeout": "20000",
           "OCF_RESKEY_CRM_meta_interval": "10000", "LC_ALL": "C"}
    for key, value in params.items():
        env["OCF_RESKEY_" + key] = str(value)
    return env
