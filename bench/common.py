"""What several benches share: launchers for a non-editable copy of hasf.

The development venv installs hasf editable, whose import hook costs ~9 ms per
process; cluster nodes install it normally.  So benches time launchers made
by the same template `make install` uses, over a regular install of this
checkout (the one the tests use, tests/testagents).
"""

import atexit
import os
import shutil
import tempfile

from testagents import REPO, hasf_site, write_launcher  # noqa: F401  (REPO for benches)

_dir = None


def install_root():
    """The directory of the regular install's launchers (made once per run)."""
    global _dir
    if _dir is None:
        hasf_site()
        _dir = scratch_dir("hasf-bench-")
    return _dir


def scratch_dir(prefix):
    """A world-readable temporary directory (agents may run as nobody), removed at exit."""
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o755)
    atexit.register(shutil.rmtree, path, True)
    return path


def launcher(name, module, function="main", extra_paths=()):
    """An executable launcher for module:function in the bench install."""
    return write_launcher(os.path.join(install_root(), name), module, function, "bench")


def ocf_env(**params):
    """An environment like pacemaker-execd's for an OCF agent call."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf",
           "OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1",
           "OCF_RESOURCE_INSTANCE": "bench", "OCF_RESKEY_CRM_meta_timeout": "20000",
           "OCF_RESKEY_CRM_meta_interval": "10000", "LC_ALL": "C"}
    for key, value in params.items():
        env["OCF_RESKEY_" + key] = str(value)
    return env
