"""The RPM spec builds with rpmbuild and lays out exactly what `make install` does.

Debian's rpm has no Python macros, so the test defines %__python3 (this venv's
interpreter, which has pip and setuptools) and %python3_sitelib (its purelib),
as a SUSE/Fedora build root would from their own macros.
"""

import os
import subprocess
import sys
import sysconfig
import tarfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(REPO, "packaging", "rpm", "hasf.spec")


def spec_version():
    for line in open(SPEC):
        if line.startswith("Version:"):
            return line.split()[1]
    raise AssertionError("no Version in spec")


def source_tarball(topdir):
    """hasf-VERSION.tar.gz of the tracked files, as a release tarball would hold."""
    version = spec_version()
    files = subprocess.run(["git", "-C", REPO, "ls-files"], capture_output=True, text=True,
                           check=True, timeout=60).stdout.split()
    sources = os.path.join(topdir, "SOURCES")
    os.makedirs(sources)
    path = os.path.join(sources, "hasf-%s.tar.gz" % version)
    with tarfile.open(path, "w:gz") as tar:
        for name in files:
            if os.path.exists(os.path.join(REPO, name)):
                tar.add(os.path.join(REPO, name), arcname="hasf-%s/%s" % (version, name))
    return path


@pytest.mark.slow
def test_rpm_builds_and_lays_out_the_cluster_paths(tmp_path):
    topdir = str(tmp_path / "rpmbuild")
    source_tarball(topdir)
    purelib = sysconfig.get_path("purelib")
    build = subprocess.run(
        ["rpmbuild", "-bb", "--nodeps", "--define", "_topdir %s" % topdir,
         "--define", "__python3 %s" % sys.executable, "--define", "python3_sitelib %s" % purelib,
         SPEC], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    rpms = [os.path.join(dp, f) for dp, _, fs in os.walk(topdir) for f in fs if f.endswith(".rpm")]
    assert len(rpms) == 1
    listing = subprocess.run(["rpm", "-qlvp", rpms[0]], capture_output=True, text=True,
                             check=True, timeout=60).stdout.splitlines()
    paths = {line.split()[-1]: line.split()[0] for line in listing}
    manifest = [line.split() for line in open(os.path.join(REPO, "packaging", "executables.txt"))
                if line.strip() and not line.startswith("#")]
    libdir = subprocess.run(["rpm", "--eval", "%{_libdir}"], capture_output=True, text=True,
                            timeout=30).stdout.strip()
    places = {"ocf": "/usr/lib/ocf/resource.d/hasf/{}", "fence": "/usr/sbin/fence_hasf_{}",
              "glue": libdir + "/stonith/plugins/external/hasf-{}", "bin": "/usr/bin/{}"}
    for kind, name, _ in manifest:
        path = places[kind].format(name)
        assert paths.get(path) == "-rwxr-xr-x", (path, paths.get(path))
    assert purelib + "/hasf/ocf/main.py" in paths
    assert not any(p.startswith(purelib + "/agents") for p in paths)
