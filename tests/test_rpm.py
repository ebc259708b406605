"""packaging/rpm/hasf.spec, built as each distribution builds it, then linted, installed, run.

Debian's rpm has none of the distributions' Python macros (%pyproject_wheel,
%pyproject_install, %pyproject_save_files, %python3_sitelib, %pytest, SUSE's
%{?sle15_python_module_pythons} and flavours ...).  tests/rpm/redhat.macros and
tests/rpm/suse.macros stand in for them: they do what Fedora's/RHEL's and SUSE's macros
do, with this machine's real interpreter (/usr/bin/python3 and python3.11, 3.11) and real
site-packages paths -- never this venv.  Each distribution below is those macros plus its
identifying macros (%fedora, %rhel, %suse_version ...), which the spec branches on.

Per distribution:
- rpmbuild -ba: an SRPM and the binary RPMs.  --nodeps, since BuildRequires name the
  distribution's packages, not Debian's; rpm resolves them against tests/rpm/DISTRO.provides
  (what exists there) instead.  %check (the fast tier) runs in the CHECKED builds.
- rpmlint (Debian's, 2.4, its default checks): no errors -- the only filters are in
  packaging/rpm/hasf-rpmlintrc, each with its reason; every warning is in LINT_WARNINGS
  with its reason.
- rpm -i --root: into a root whose only other package is a stand-in that provides exactly
  DISTRO.provides, with dependencies checked (no --nodeps).
- every installed executable runs from that root (tests/rpm/in_root.py: the root's /usr laid
  over this machine's /usr in a private mount namespace): each OCF agent's meta-data and
  validate-all, each fence agent's metadata and validate-all, each cluster-glue plugin's
  getconfignames and getinfo-xml, and hasf-cib verify on its shipped example.  Not a
  chroot: the root holds only what the RPMs install, so the interpreter, python3-lxml,
  python3-libvirt and pacemaker-cli it needs are this machine's, seen through the overlay.
"""

import json
import os
import re
import subprocess
import sys
import tarfile

import pytest

from hasf.cib.agents import source_manifest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (rpm --root, mount namespace)"),
]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(REPO, "packaging", "rpm", "hasf.spec")
HERE = os.path.join(REPO, "tests", "rpm")
VENV_MARKS = (os.path.dirname(os.path.dirname(os.path.abspath(sys.executable))), ".venv")

# distro: (family macro file, identifying macros, python flavour prefix, builds glue plugins)
DISTROS = {
    "fedora40": ("redhat.macros", {"fedora": "40", "dist": ".fc40"}, "python3", True),
    "rhel9": ("redhat.macros", {"rhel": "9", "el9": "1", "dist": ".el9"}, "python3", False),
    "sle15": ("suse.macros", {"suse_version": "1500", "sle_version": "150600",
                              "sle15_python_module_pythons": "%{expand:%%global pythons python311}"},
              "python311", True),
    "sle16": ("suse.macros", {"suse_version": "1600"}, "python3", True),
}
# %check (the fast tier, ~1 min) runs once per family; the other builds pass --without check.
CHECKED = {"fedora40", "sle15"}
SITELIB = "/usr/lib/python3.11/site-packages"
INTERPRETER = {"python3": "/usr/bin/python3", "python311": "/usr/bin/python3.11"}

RPMLINTRC = os.path.join(REPO, "packaging", "rpm", "hasf-rpmlintrc")  # errors, with reasons
# The warnings Debian's rpmlint 2.4 (its default configuration) gives, and why each is
# right for this package.
LINT_WARNINGS = {
    "invalid-license": "GPL-2.0-or-later is SPDX, which Fedora and SUSE use; Debian's "
                       "rpmlint default list has only the old short names",
    "requires-on-release": "subpackages pin each other to %{version}-%{release}, as "
                           "Fedora's guidelines ask for a split package",
    "only-non-binary-in-usr-lib": "cluster-glue looks for external/* plugins (scripts) "
                                  "under its %{_libdir}",
    "no-documentation": "the glue plugins and the agent packages: their documentation is "
                        "in the library's and fence packages' README, their meta-data",
    "no-manual-page-for-binary": "fence agents and hasf-cib describe themselves "
                                 "(-o metadata, --help); no man pages yet",
    "no-buildroot-tag": "BuildRoot is obsolete since rpm 4.6; Fedora forbids it",
    "invalid-url": "URL/Source0 are placeholders: the project has no public address yet",
}


def run(argv, **kw):
    kw.setdefault("timeout", 600)
    return subprocess.run(argv, capture_output=True, text=True, **kw)


def spec_version():
    for line in open(SPEC):
        if line.startswith("Version:"):
            return line.split()[1]
    raise AssertionError("no Version in spec")


def read_list(path):
    with open(path) as handle:
        return [line.strip() for line in handle if line.strip() and not line.startswith("#")]


def source_tarball(topdir):
    """hasf-VERSION.tar.gz of the checkout's files (tracked, and new ones not ignored)."""
    version = spec_version()
    files = run(["git", "-C", REPO, "ls-files", "--cached", "--others", "--exclude-standard"],
                timeout=60).stdout.split()
    sources = os.path.join(topdir, "SOURCES")
    os.makedirs(sources)
    with tarfile.open(os.path.join(sources, "hasf-%s.tar.gz" % version), "w:gz") as tar:
        for name in files:
            if os.path.exists(os.path.join(REPO, name)):
                tar.add(os.path.join(REPO, name), arcname="hasf-%s/%s" % (version, name))


def rpmbuild(topdir, distro, *args):
    family, ids, _prefix, _glue = DISTROS[distro]
    argv = ["rpmbuild", "--nodeps", "--define", "_topdir %s" % topdir,
            "--define", "_dbpath %s/rpmdb" % topdir, "--define", "_standin_dir %s" % HERE,
            "--load", os.path.join(HERE, family)]
    for name, value in ids.items():
        argv += ["--define", "%s %s" % (name, value)]
    return run(argv + list(args), timeout=900)


class Build:
    def __init__(self, distro, topdir, log):
        self.distro, self.topdir, self.log = distro, topdir, log
        found = [os.path.join(dp, f) for dp, _, fs in os.walk(topdir) for f in fs]
        self.srpm = next(p for p in found if p.endswith(".src.rpm"))
        self.rpms = sorted(p for p in found if p.endswith(".rpm") and p != self.srpm
                           and "/RPMS/" in p)

    def query(self, path, fmt):
        return run(["rpm", "-qp", "--nosignature", "--qf", fmt, path], timeout=60).stdout

    def deps(self, path, kind):
        out = run(["rpm", "-qp", "--nosignature", "--" + kind, path], timeout=60).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def by_name(self):
        return {self.query(p, "%{NAME}"): p for p in self.rpms}


@pytest.fixture(scope="module", params=sorted(DISTROS))
def built(request, tmp_path_factory):
    distro = request.param
    topdir = str(tmp_path_factory.mktemp("rpm-" + distro))
    source_tarball(topdir)
    extra = [] if distro in CHECKED else ["--without", "check"]
    result = rpmbuild(topdir, distro, "-ba", *extra, SPEC)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return Build(distro, topdir, result.stdout + result.stderr)


def expected_packages(distro):
    _family, _ids, prefix, glue = DISTROS[distro]
    names = {prefix + "-hasf", "hasf-agent-vm", "hasf-agents-storage", "hasf-fence-ipmi",
             "hasf-fence-libvirt", "hasf-fence-demo", "hasf-cib"}
    if glue:
        names |= {"hasf-glue-ipmi", "hasf-glue-libvirt", "hasf-glue-demo"}
    return names


def manifest():
    """(kind, name) of every executable packaging/executables.txt lists."""
    return [(kind, name) for kind, name, _module, _function in source_manifest()]


def place(kind, name):
    return {"ocf": "/usr/lib/ocf/resource.d/hasf/" + name, "fence": "/usr/sbin/fence_hasf_" + name,
            "glue": "/usr/lib64/stonith/plugins/external/hasf-" + name,
            "bin": "/usr/bin/" + name}[kind]


def test_subpackages_split_by_what_they_pull_in(built):
    """Mutations: `Requires: %{libvirt_binding}` moved to the library package -> its
    requires hold the binding; hasf-glue-ipmi without `Requires: cluster-glue` -> fails."""
    names = built.by_name()
    assert set(names) == expected_packages(built.distro)
    prefix = DISTROS[built.distro][2]
    lib_requires = " ".join(built.deps(names[prefix + "-hasf"], "requires"))
    for heavy in ("libvirt", "lxml", "pacemaker", "cluster-glue", "ipmitool", "ssh"):
        assert heavy not in lib_requires, (heavy, lib_requires)
    assert any("libvirt" in r for r in built.deps(names["hasf-agent-vm"], "requires"))
    assert not any("libvirt" in r for r in built.deps(names["hasf-fence-ipmi"], "requires"))
    cib = built.deps(names["hasf-cib"], "requires")
    assert prefix + "-lxml" in cib and "pacemaker-cli" in cib
    for device in ("ipmi", "libvirt", "demo"):
        if "hasf-glue-" + device in names:
            requires = built.deps(names["hasf-glue-" + device], "requires")
            assert "cluster-glue" in requires
            assert any(r.startswith("hasf-fence-" + device + " ") for r in requires), requires
    arch = {name: built.query(path, "%{ARCH}") for name, path in names.items()}
    assert all(a == "noarch" for n, a in arch.items() if not n.startswith("hasf-glue-")), arch


def test_files_are_where_the_distribution_and_cluster_software_look(built):
    """Every manifest executable is in some package, 0755; the library is under the real
    sitelib, nothing under the venv or the build root.  Mutation: the spec's glue_dir
    set to %{_prefix}/lib/stonith/... -> plugins where x86_64 cluster-glue does not look."""
    files = {}
    for path in built.rpms:
        for line in run(["rpm", "-qlvp", "--nosignature", path], timeout=60).stdout.splitlines():
            files[line.split()[-1]] = (line.split()[0], path)
    assert SITELIB + "/hasf/ocf/main.py" in files
    assert SITELIB + "/hasf/agents/virtual_machine.py" in files
    assert not any(p.startswith(SITELIB + "/agents") for p in files)
    for mark in VENV_MARKS + (built.topdir,):
        assert not [p for p in files if mark in p], mark
    for kind, name in manifest():
        path = place(kind, name)
        if kind == "glue" and not DISTROS[built.distro][3]:
            assert path not in files
            continue
        assert files[path][0] == "-rwxr-xr-x", (path, files[path])


def test_build_requires_resolve_on_that_distribution(built, root):
    """The SRPM's BuildRequires (the spec's and those %pyproject_buildrequires generated),
    resolved by rpm itself against what the distribution provides, versions included
    (RHEL 9's setuptools is 53).  Mutation: the spec's RHEL 9 sed of pyproject.toml's
    setuptools>=64 removed -> python3dist(setuptools) >= 64 is not provided on rhel9."""
    root_dir, rpm = root
    wanted = [r for r in built.deps(built.srpm, "requires") if not r.startswith("rpmlib(")]
    probe = make_rpm(built.topdir + "/probe", "hasf-buildrequires-probe", requires=wanted)
    result = run(rpm + ["-i", "--test", probe])
    assert result.returncode == 0, result.stderr


def test_recommends_name_packages_of_that_distribution(built):
    """Weak dependencies are not enforced by rpm -i: their names are checked against the
    list.  Mutation: the SUSE branch's iscsi_initiator set to iscsi-initiator-utils
    (Fedora's name) -> the sle builds fail here."""
    provided = {entry.split()[0]
                for entry in read_list(os.path.join(HERE, built.distro + ".provides"))}
    missing = [(os.path.basename(p), r) for p in built.rpms for r in built.deps(p, "recommends")
               if r.split()[0] not in provided]
    assert not missing


def test_rpmlint_finds_no_errors(built):
    """Debian's rpmlint on the SRPM and every RPM: no error; warnings only the listed ones.
    Mutation: the no-signature filter dropped from hasf-rpmlintrc -> E: no-signature."""
    result = run(["rpmlint", "-r", RPMLINTRC, built.srpm] + built.rpms, timeout=300)
    lines = result.stdout.splitlines()
    errors = [line for line in lines if ": E: " in line]
    warnings = [line for line in lines if ": W: " in line]
    summary = [line for line in lines if "packages and" in line]
    assert summary, result.stdout[-2000:] + result.stderr[-2000:]
    assert not errors, "\n".join(errors)
    unexplained = [w for w in warnings if w.split(": W: ")[1].split()[0] not in LINT_WARNINGS]
    assert not unexplained, "\n".join(unexplained)
    print("\n".join(warnings))


def test_check_ran_the_fast_tier(built):
    """%check ran `pytest -m fast` against the package in the build root, and it passed.
    Mutation: `%pytest` removed from %check -> no pytest summary in the log."""
    if built.distro not in CHECKED:
        pytest.skip("%s builds --without check (the fast tier runs once per family)"
                    % built.distro)
    summary = re.findall(r"^=+ (\d+) passed.* in [\d.]+s.*=+$", built.log, re.M)
    assert summary and int(summary[-1]) > 100, built.log[-3000:]
    assert "deselected" in built.log  # the tier, not the whole suite


def make_rpm(topdir, name, provides=(), requires=()):
    """A noarch package with no files that provides and requires what it is told."""
    os.makedirs(topdir, exist_ok=True)
    spec = os.path.join(topdir, name + ".spec")
    with open(spec, "w") as handle:
        handle.write("Name: %s\nVersion: 1\nRelease: 1\nLicense: MIT\nSummary: %s\n"
                     "BuildArch: noarch\n" % (name, name))
        handle.writelines("Provides: %s\n" % entry for entry in provides)
        handle.writelines("Requires: %s\n" % entry for entry in requires)
        handle.write("%%description\n%s\n%%files\n" % name)
    result = run(["rpmbuild", "-bb", "--define", "_topdir %s" % topdir,
                  "--define", "_dbpath %s/rpmdb" % topdir, spec], timeout=300)
    assert result.returncode == 0, result.stderr
    return next(os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(topdir, "RPMS"))
                for f in fs if f.startswith(name))


@pytest.fixture(scope="module")
def root(built, tmp_path_factory):
    """A root whose only package provides exactly DISTRO.provides."""
    root_dir = str(tmp_path_factory.mktemp("root-" + built.distro))
    provides = read_list(os.path.join(HERE, built.distro + ".provides"))
    standin = make_rpm(built.topdir + "/standin", "hasf-standin-" + built.distro, provides)
    rpm = ["rpm", "--root", root_dir, "--dbpath", "/var/lib/rpm", "--nosignature"]
    assert run(rpm + ["--initdb"]).returncode == 0
    result = run(rpm + ["-i", standin])
    assert result.returncode == 0, result.stderr
    return root_dir, rpm


@pytest.fixture(scope="module")
def installed(built, root):
    root_dir, rpm = root
    return root_dir, rpm, run(rpm + ["-i"] + built.rpms)


def test_rpms_install_with_dependencies_checked(built, installed):
    """All binary RPMs into a root that has only the distribution's names: no --nodeps.
    Mutation: `Requires: openssh-clients` spelled `openssh` -> unresolved dependency."""
    root, rpm, result = installed
    assert result.returncode == 0, result.stderr
    listed = run(rpm + ["-qa", "--qf", "%{NAME}\n"]).stdout.split()
    assert expected_packages(built.distro) <= set(listed)


def in_root(root, commands):
    result = run(["unshare", "--mount", "--propagation", "private", sys.executable,
                  os.path.join(HERE, "in_root.py"), root], input=json.dumps(commands),
                 timeout=900)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def ocf_env(**params):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf",
           "OCF_RESOURCE_INSTANCE": "r1", "HA_RSCTMP": "/tmp", "OCF_RA_VERSION_MAJOR": "1",
           "OCF_RA_VERSION_MINOR": "1"}
    env.update({"OCF_RESKEY_" + k: v for k, v in params.items()})
    return env


def valid_configs(tmp):
    """A configuration each OCF agent's validate-all accepts on this machine."""
    domain = os.path.join(tmp, "vm1.xml")
    with open(domain, "w") as handle:
        handle.write("<domain type='qemu'><name>vm1</name><memory unit='MiB'>64</memory>"
                     "<os><type>hvm</type></os></domain>\n")
    iqn = "iqn.2026-12.invalid.hasf:t1"
    return {
        "VirtualMachine": {"config": domain, "hypervisor": "test:///default"},
        "Filesystem": {"device": "/dev/loop0", "directory": tmp, "fstype": "ext4"},
        "iSCSITarget": {"iqn": iqn},
        "iSCSILogicalUnit": {"target_iqn": iqn, "lun": "1", "path": "/dev/null"},
        # this machine has libiscsi-bin, not open-iscsi: any executable stands in
        "iscsi": {"portal": "192.0.2.1:3260", "target": iqn, "iscsiadm": "/usr/bin/true"},
        "OCFS2Membership": {"nodes": "%s:192.0.2.1 peer:192.0.2.2" % os.uname().nodename},
    }


# the schemas of meta-data: OCF 1.1 as pcs 0.11 reads it (resource-agents' metadata.rng is
# OCF 1.0 and rejects `reloadable`), and fence-agents'
OCF_RNG = "/usr/share/pcs/data/ocf-1.1.rng"
FENCE_RNG = "/usr/share/cluster/relaxng/metadata.rng"
FENCE_VALID = {"ipmi": "ip=192.0.2.1\nusername=admin\npassword=secret\n",
               "libvirt": "uri=test:///default\nplug=test\n",
               "demo": "host_map=node1:192.0.2.1\n"}


def test_every_installed_executable_runs_from_the_root(built, installed, tmp_path):
    """meta-data and validate-all of every OCF agent, metadata and validate-all of every
    fence agent, getconfignames/getinfo-xml of every glue plugin (and status of the libvirt
    one against libvirt's test:/// driver), hasf-cib verify -- run
    at the installed paths with the installed package; each launcher names the flavour's
    interpreter and the package's sitelib; meta-data is valid for pcs's OCF 1.1 and
    fence-agents' schemas.  Mutation: the spec's --site-path
    %{hasf_sitearch} dropped -> VirtualMachine cannot import libvirt, hasf-cib not lxml."""
    root, rpm, installing = installed
    assert installing.returncode == 0, installing.stderr
    tmp = str(tmp_path)
    os.chmod(tmp, 0o755)
    configs = valid_configs(tmp)
    commands, expect, schemas = [], [], []
    for kind, name in manifest():
        path = place(kind, name)
        if kind == "glue" and not DISTROS[built.distro][3]:
            continue
        with open(root + path) as handle:
            text = handle.read()
        assert text.startswith("#!%s -IS\n" % INTERPRETER[DISTROS[built.distro][2]]), text[:80]
        paths = re.search(r"^sys\.path\[:0\] = (.*)$", text, re.M).group(1)
        assert SITELIB in paths and ".venv" not in paths and built.topdir not in paths, paths
        if kind == "ocf":
            commands += [{"argv": [path, "meta-data"], "env": ocf_env()},
                         {"argv": [path, "validate-all"], "env": ocf_env(**configs[name])}]
            expect += ['<resource-agent name="%s"' % name, ""]
            schemas += [OCF_RNG, None]
        elif kind == "fence":
            commands += [{"argv": [path, "-o", "metadata"], "env": ocf_env()},
                         {"argv": [path], "env": ocf_env(),
                          "stdin": "action=validate-all\n" + FENCE_VALID[name]}]
            expect += ['<resource-agent name="fence_hasf_%s"' % name, "Configuration is valid"]
            schemas += [FENCE_RNG, None]
        elif kind == "glue":
            commands += [{"argv": [path, "getconfignames"], "env": ocf_env()},
                         {"argv": [path, "getinfo-xml"], "env": ocf_env()}]
            expect += ["password", "<parameters>"]
            schemas += [None, None]
            if name == "libvirt":  # the one device that has something to talk to here
                env = dict(ocf_env(), hypervisor_uri="test:///default", hostlist="test")
                commands.append({"argv": [path, "status"], "env": env})
                expect.append("")
                schemas.append(None)
        else:
            example = SITELIB + "/hasf/cib/examples/hasf-demo.toml"
            commands += [{"argv": [path, "verify", example], "env": ocf_env()}]
            expect += ["ok   crm_verify"]
            schemas.append(None)
    results = in_root(root, commands)
    assert len(results) == len(commands)
    for command, result, needle, schema in zip(commands, results, expect, schemas):
        assert result["rc"] == 0, (command["argv"], result)
        assert needle in result["stdout"], (command["argv"], result["stdout"][:500])
        assert "Traceback" not in result["stderr"], result["stderr"]
        if schema:
            valid = run(["xmllint", "--noout", "--relaxng", schema, "-"], input=result["stdout"],
                        timeout=60)
            assert valid.returncode == 0, (command["argv"], valid.stderr)


def test_srpm_rebuilds_the_same_packages(built, tmp_path):
    """The SRPM alone (rpmbuild --rebuild) makes the same set of packages."""
    if built.distro != "fedora40":
        pytest.skip("one rebuild is enough: the SRPM holds the same spec for every distro")
    result = rpmbuild(str(tmp_path), built.distro, "--rebuild", "--without", "check", built.srpm)
    assert result.returncode == 0, result.stderr[-3000:]
    made = [f for _, _, fs in os.walk(str(tmp_path / "RPMS")) for f in fs]
    assert sorted(made) == sorted(os.path.basename(p) for p in built.rpms)
