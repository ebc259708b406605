"""`make install DESTDIR=D PYTHON=P`: the layout cluster software looks for."""

import os
import stat
import subprocess
import sysconfig
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(REPO, "tests")


def make_install(destdir, *extra):
    return subprocess.run(["make", "-C", REPO, "install", "DESTDIR=%s" % destdir,
                           "PYTHON=%s" % sys.executable] + list(extra),
                          capture_output=True, text=True, timeout=300)


def manifest():
    with open(os.path.join(REPO, "packaging", "executables.txt")) as handle:
        for line in handle:
            line = line.split("#", 1)[0].split()
            if line:
                yield line


PLACES = {"ocf": "usr/lib/ocf/resource.d/hasf/{}", "fence": "usr/sbin/fence_hasf_{}",
          "glue": "usr/lib/stonith/plugins/external/hasf-{}", "bin": "usr/bin/{}"}
PROBES = {"ocf": ["meta-data"], "fence": ["-o", "metadata"], "glue": ["getconfignames"],
          "bin": ["--help"]}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    destdir = str(tmp_path_factory.mktemp("root"))
    result = make_install(destdir)
    assert result.returncode == 0, result.stdout + result.stderr
    return destdir


def test_library_lands_in_the_interpreters_site_dir_under_one_namespace(installed):
    site = installed + sysconfig.get_path("purelib")
    assert os.path.isfile(os.path.join(site, "hasf", "ocf", "main.py"))
    for sub in ("agents", "stonith", "cib", "ocfs2_membership"):
        assert os.path.isfile(os.path.join(site, "hasf", sub, "__init__.py"))
        assert not os.path.exists(os.path.join(site, sub)), "top-level %s installed" % sub


def test_every_manifest_entry_is_laid_out_and_runs(installed):
    for kind, name, _target in manifest():
        path = os.path.join(installed, PLACES[kind].format(name))
        mode = os.stat(path).st_mode
        assert stat.S_IMODE(mode) == 0o755, path
        with open(path) as handle:
            assert handle.readline() == "#!%s -IS\n" % sys.executable
        result = subprocess.run([path] + PROBES[kind], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, (path, result.stderr)


def test_each_kind_goes_where_cluster_software_looks(tmp_path):
    """A manifest with every kind: paths, modes (never group/other-writable), shebang, runs."""
    custom = tmp_path / "manifest.txt"
    custom.write_text("ocf HasfTest testagents.hasf_test_agent:main\n"
                      "fence demo testagents.hasf_test_agent:main\n"
                      "glue demo testagents.hasf_test_agent:main\n"
                      "bin hasf-test testagents.hasf_test_agent:main\n")
    destdir = tmp_path / "root"
    old = os.umask(0o002)  # group-writable by default: the installer must still set 0755
    try:
        result = make_install(str(destdir), "STONITH_PLUGIN_DIR=/usr/lib64/stonith/plugins/external",
                              "INSTALL_FLAGS=--no-library --manifest %s --extra-path %s"
                              % (custom, TESTS))
    finally:
        os.umask(old)
    assert result.returncode == 0, result.stderr
    expected = ["usr/lib/ocf/resource.d/hasf/HasfTest", "usr/sbin/fence_hasf_demo",
                "usr/lib64/stonith/plugins/external/hasf-demo", "usr/bin/hasf-test"]
    for rel in expected:
        path = destdir / rel
        assert stat.S_IMODE(path.stat().st_mode) == 0o755
    agent = destdir / expected[0]
    text = agent.read_text()
    assert text.count("\n") < 15 and "from testagents.hasf_test_agent import main" in text
    result = subprocess.run([str(agent), "meta-data"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and 'resource-agent name="HasfTest"' in result.stdout


def test_python_must_be_absolute(tmp_path):
    result = subprocess.run(["make", "-C", REPO, "install", "DESTDIR=%s" % tmp_path,
                             "PYTHON=python3"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "absolute path" in result.stderr


def test_launchers_of_debians_python_find_distribution_packages(tmp_path):
    """PYTHON=/usr/bin/python3 (as on Debian nodes): hasf lands in /usr/local, its
    dependencies (python3-lxml, ...) in /usr/lib/python3/dist-packages; a launcher
    runs with -S, so it must list that directory itself.  pip stands in for lxml:
    Debian's python3-pip is on this machine in the same place."""
    python = "/usr/bin/python3"
    where = subprocess.run([python, "-c", "import os, pip; print(os.path.dirname(os.path.dirname("
                            "pip.__file__)))"], capture_output=True, text=True, timeout=30)
    if where.returncode != 0 or not where.stdout.startswith("/usr/lib/python3"):
        pytest.skip("no Debian-packaged module for %s here" % python)
    result = subprocess.run(["make", "-C", REPO, "install", "DESTDIR=%s" % tmp_path,
                             "PYTHON=%s" % python, "INSTALL_FLAGS=--no-library"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    launcher = (tmp_path / "usr/bin/hasf-cib").read_text()
    assert repr(where.stdout.strip()) in launcher
    paths_line = next(line for line in launcher.splitlines() if line.startswith("sys.path[:0]"))
    probe = subprocess.run([python, "-I", "-S", "-c", "import sys\n%s\nimport pip" % paths_line],
                           capture_output=True, text=True, timeout=30)
    assert probe.returncode == 0, probe.stderr
