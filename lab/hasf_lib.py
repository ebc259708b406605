"""A regular, world-readable install of this checkout's hasf, for interpreters outside the venv.

Why: the development venv installs hasf editable (an import hook pointing
into the checkout), which neither a guest nor another user can use: a batch
guest imports hasf from a directory copied into its share (storage_path.py,
ocfs2_cluster.py), and ocf-tester runs `meta-data` as `nobody`, who may not
read a checkout under /root.  ``hasf_lib()`` makes one `pip install
--target` of the checkout in a 0755 temp directory, once per process, and
removes it at exit; the tests' launchers (tests/testagents) put it first on
their sys.path too.
"""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_lib = None


def hasf_lib():
    """The directory of the install (made on first use): hasf imports from it."""
    global _lib
    if _lib is None:
        root = tempfile.mkdtemp(prefix="hasf-site-")
        os.chmod(root, 0o755)
        atexit.register(shutil.rmtree, root, True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--no-build-isolation", "--no-warn-script-location", "--target",
                        os.path.join(root, "lib"), REPO],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
        _lib = os.path.join(root, "lib")
    return _lib
