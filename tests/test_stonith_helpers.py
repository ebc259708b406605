"""Helpers for the STONITH tests (imported by the other test_stonith_* modules),
plus tests of the installed executables themselves.

`installed()` lays out every hasf executable with packaging/install.py (the
code `make install` runs) into a private DESTDIR, with this interpreter as
PYTHON, so the fence agents and glue plugins are exec'd exactly as cluster
software execs them.  `glue_plugins()` puts the hasf-* plugins where
cluster-glue's `stonith` CLI looks (it has a fixed plugin directory) and
removes them again.
"""

import atexit
import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import threading

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GLUE_DIR = "/usr/lib/stonith/plugins/external"
DEVICES = ("ipmi", "libvirt", "demo")
_root = None
_lock = threading.Lock()


def installed():
    """DESTDIR with fence agents (usr/sbin) and glue plugins; made once per session."""
    global _root
    with _lock:
        if _root is None:
            root = tempfile.mkdtemp(prefix="hasf-stonith-install-")
            atexit.register(shutil.rmtree, root, True)
            os.chmod(root, 0o755)
            subprocess.run([sys.executable, os.path.join(REPO, "packaging", "install.py"),
                            "--no-library", "--destdir", root, "--python", sys.executable],
                           check=True, capture_output=True, timeout=120)
            _root = root
    return _root


def agent(device):
    return os.path.join(installed(), "usr", "sbin", "fence_hasf_" + device)


def sbin_dir():
    return os.path.join(installed(), "usr", "sbin")


def plugin(device):
    return os.path.join(installed(), GLUE_DIR.lstrip("/"), "hasf-" + device)


@contextlib.contextmanager
def glue_plugins():
    """hasf-* plugins in cluster-glue's fixed plugin dir for the duration (flock'd)."""
    os.makedirs("/run/lock", exist_ok=True)
    fd = os.open("/run/lock/hasf-stonith-glue.lock", os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    placed = []
    try:
        for device in DEVICES:
            dest = os.path.join(GLUE_DIR, "hasf-" + device)
            if not os.path.exists(dest):
                shutil.copy(plugin(device), dest)
                os.chmod(dest, 0o755)
                placed.append(dest)
        yield GLUE_DIR
    finally:
        for dest in placed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dest)
        os.close(fd)


def run(argv, stdin=None, env=None, timeout=90):
    """Run a fence agent / tool; CompletedProcess (text)."""
    base = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
    base.update(env or {})
    return subprocess.run(argv, input=stdin, env=base, capture_output=True, text=True,
                          timeout=timeout)


def stdin_of(**params):
    """name=value lines as pacemaker-fenced writes them."""
    return "".join("%s=%s\n" % (k, v) for k, v in params.items())


class CmdlineWatcher:
    """Scan /proc/*/cmdline and /proc/*/environ-free places while fencing runs."""

    def __init__(self, needle):
        self.needle = needle.encode()
        self.hits = []
        self.scans = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as handle:
                        data = handle.read()
                except OSError:
                    continue
                if self.needle in data:
                    self.hits.append((pid, data.replace(b"\0", b" ")))
            self.scans += 1

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)


# -- tests of the installed executables -------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_installed_fence_agent_prints_metadata(device):
    result = run([agent(device), "-o", "metadata"])
    assert result.returncode == 0, result.stderr
    assert '<resource-agent name="fence_hasf_%s"' % device in result.stdout
    proc = run(["xmllint", "--noout", "--relaxng", "/usr/share/cluster/relaxng/metadata.rng",
                "-"], stdin=result.stdout)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("device", DEVICES)
def test_installed_glue_plugin_mode_and_ops(device):
    path = plugin(device)
    assert os.stat(path).st_mode & 0o777 == 0o755
    result = run([path, "getconfignames"])
    assert result.returncode == 0 and result.stdout.split()
    assert run([path, "bogus-op"], env={}).returncode != 0


def test_stonith_cli_lists_and_describes_hasf_plugins():
    with glue_plugins():
        listed = run(["stonith", "-L"]).stdout.split()
        for device in DEVICES:
            assert "external/hasf-" + device in listed
        names = run(["stonith", "-t", "external/hasf-ipmi", "-n"])
        assert names.returncode == 0
        assert {"hostname", "ipaddr", "userid", "passwd"} <= set(names.stdout.split())
        meta = run(["stonith", "-t", "external/hasf-libvirt", "-m"])
        assert meta.returncode == 0 and "hypervisor_uri" in meta.stdout
