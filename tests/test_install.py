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


BASE_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def plain_venv(tmp_path_factory):
    """A plain `python3 -m venv`: pip and setuptools, no wheel (the case of issue 14)."""
    venv = tmp_path_factory.mktemp("plain") / "venv"
    subprocess.run([BASE_PYTHON, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    assert subprocess.run([python, "-c", "import wheel"], capture_output=True,
                          timeout=60).returncode != 0, "this venv has wheel: not the case"
    return python


def venv_purelib(python):
    return subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True, timeout=60).stdout.strip()


def test_a_plain_venv_installs(plain_venv, tmp_path):
    """make install PYTHON=<plain venv>: the wheel is built by an interpreter that can build
    one (here BASE_PYTHON, Debian's, with python3-wheel), the venv's pip installs it.
    Mutation: install_library's wheel_builder(args.python) replaced by args.python ->
    "invalid command 'bdist_wheel'" and rc != 0."""
    result = subprocess.run(["make", "-C", REPO, "install", "DESTDIR=%s" % tmp_path,
                             "PYTHON=%s" % plain_venv, "BASE_PYTHON=%s" % BASE_PYTHON],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    site = str(tmp_path) + venv_purelib(plain_venv)
    assert os.path.isfile(os.path.join(site, "hasf", "agents", "virtual_machine.py"))
    launcher = (tmp_path / "usr/sbin/fence_hasf_demo").read_text()
    assert launcher.startswith("#!%s -IS\n" % plain_venv)
    probe = subprocess.run([plain_venv, "-I", "-c", "import sys; sys.path.insert(0, %r); "
                            "from hasf.stonith import demo; print(demo.__file__)" % site],
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0 and probe.stdout.startswith(site), probe.stderr


def one_line_error(result):
    """The installer's own stderr lines (make adds its `make: *** ...` line)."""
    lines = [line for line in result.stderr.splitlines() if not line.startswith(("make: ", "make["))]
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_no_interpreter_that_can_build_a_wheel_is_one_line(plain_venv, tmp_path):
    """Both PYTHON and the interpreter running install.py lack wheel: one line that says
    what is missing, not pip's output.  Mutation: wheel_builder returns python without
    the check -> pip's "invalid command 'bdist_wheel'" output, many lines."""
    result = subprocess.run(["make", "-s", "-C", REPO, "install", "DESTDIR=%s" % tmp_path,
                             "PYTHON=%s" % plain_venv, "BASE_PYTHON=%s" % plain_venv],
                            capture_output=True, text=True, timeout=600)
    line = one_line_error(result)
    assert "cannot build hasf's wheel" in line and "wheel" in line.split(":", 2)[2], line


def test_an_interpreter_without_pip_is_one_line(tmp_path):
    """`python3 -m venv --without-pip`: one line naming what is missing.  Mutation: the
    pip probe in install_library removed -> "No module named pip" from pip's run, rc 1,
    after a wheel was built (several lines)."""
    venv = tmp_path / "nopip"
    subprocess.run([BASE_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=300)
    result = subprocess.run(["make", "-s", "-C", REPO, "install", "DESTDIR=%s" % (tmp_path / "r"),
                             "PYTHON=%s" % (venv / "bin" / "python")],
                            capture_output=True, text=True, timeout=600)
    line = one_line_error(result)
    assert "has no pip" in line and str(venv) in line, line
