"""hasf-cib against hostile input: agent names that try to leave the agent directories,
TOML that tries to crash the reader, names with quotes, files that hold secrets.

hasf-cib runs as root.  An agent name came from a spec or a CIB someone else
may have written, and `os.path.join(ocf_root, "resource.d", provider, type)`
with provider "/tmp/x" is "/tmp/x/...": the agent that "gives meta-data" was
any executable.  Here the would-be agent is a real executable that leaves a
marker file when run; every case asserts the marker is absent, so "nothing
executed" is proven, not assumed.
"""

import os
import stat

import pytest
from lxml import etree

from hasf.cib import cli

EVIL = "#!/bin/sh\necho \"$@\" >> %s\necho '<resource-agent name=\"x\"/>'\n"


@pytest.fixture
def trap(tmp_path):
    """(directory holding an executable `evil` that writes a marker, marker path)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    marker = tmp_path / "ran"
    evil = outside / "evil"
    evil.write_text(EVIL % marker)
    evil.chmod(0o755)
    return outside, marker


def _hostile_agents(outside, tmp_path):
    """(agent string, extra CLI options): names that must never be run."""
    ocf_root = tmp_path / "ocf"
    (ocf_root / "resource.d" / "prov").mkdir(parents=True)
    os.symlink(str(outside / "evil"), str(ocf_root / "resource.d" / "prov" / "Linked"))
    agents_dir = tmp_path / "agents"
    agents_dir.mkdir()
    os.symlink(str(outside / "evil"), str(agents_dir / "Linked2"))
    os.symlink(str(outside / "evil"), str(agents_dir / "fence_linked"))
    up = "../" * 12
    names = [
        "ocf:%s:evil" % outside,                          # absolute provider
        "ocf:%s%s:evil" % (up, str(outside).lstrip("/")),  # relative climb in the provider
        "ocf:hasf:%s%s/evil" % (up, str(outside).lstrip("/")),  # climb in the type
        "ocf:..:evil", "ocf:hasf:..",
        "stonith:%s/evil" % outside,                      # absolute fence agent
        "stonith:external/%s%s/evil" % (up, str(outside).lstrip("/")),
        "ocf:prov:Linked",                                # symlink out of the OCF root
        "ocf:any:Linked2",                                # symlink out of --agents-dir
        "stonith:fence_linked",
    ]
    return names, ["--ocf-root", str(ocf_root), "--agents-dir", str(agents_dir)]


def _spec(names, vm_agent):
    lines = ['[cluster]', 'nodes = ["node1", "node2"]', 'stonith-enabled = false',
             '[agents]', 'vm = "%s"' % vm_agent, '[[vm]]', 'name = "vm1"',
             'config = "/etc/vm1.xml"']
    for index, name in enumerate(names):
        lines += ['[[resource]]', 'name = "r%d"' % index, 'agent = "%s"' % name]
    return "\n".join(lines) + "\n"


def test_hostile_agent_names_in_a_spec_are_problems_and_never_run(trap, tmp_path, capsys):
    """Mutation that brings the bug back: make agents.name_problem return None (and drop
    the _inside check in AgentCatalog._find) -> the marker file appears."""
    outside, marker = trap
    names, options = _hostile_agents(outside, tmp_path)
    path = tmp_path / "spec.toml"
    path.write_text(_spec(names, "ocf:%s:evil" % outside))
    for command in ("build", "verify", "simulate"):
        rc = cli.main([command, str(path)] + options)
        assert not marker.exists(), (command, marker.read_text())
        assert rc == cli.EXIT_PROBLEMS
        err = capsys.readouterr().err
        for index in range(len(names)):
            assert "primitive r%d: agent" % index in err, (command, index, err)
        assert "primitive vm1: agent" in err
        assert "not run" in err and "nothing was written" in err


def _cib_with(names):
    root = etree.fromstring(b'<cib validate-with="pacemaker-3.0" epoch="1" num_updates="0" '
                            b'admin_epoch="0"><configuration><crm_config/><nodes/>'
                            b'<resources/><constraints/></configuration><status/></cib>')
    resources = root.find("configuration/resources")
    for index, name in enumerate(names):
        parts = name.split(":")
        element = etree.SubElement(resources, "primitive", id="r%d" % index)
        element.set("class", parts[0])
        if len(parts) == 3:
            element.set("provider", parts[1])
        element.set("type", parts[-1])
    return etree.tostring(root)


def test_hostile_agent_names_in_a_cib_are_problems_and_never_run(trap, tmp_path, capsys):
    """verify/simulate of a CIB file check the names before any tool sees the file.
    Mutation: drop agents.check_names() from cli._load_cib -> exit 0/4, no problem listed."""
    outside, marker = trap
    names, options = _hostile_agents(outside, tmp_path)
    bad = [n for n in names if "Linked" not in n and "linked" not in n]
    path = tmp_path / "cib.xml"
    path.write_bytes(_cib_with(bad))
    for command in ("verify", "simulate"):
        assert cli.main([command, str(path)] + options) == cli.EXIT_PROBLEMS
        err = capsys.readouterr().err
        for index in range(len(bad)):
            assert "primitive r%d: agent" % index in err, (command, index, err)
    assert not marker.exists()


def test_hostile_agent_name_in_a_fragment_is_a_problem(trap, tmp_path, capsys):
    outside, marker = trap
    assert cli.main(["primitive", "p1", "ocf:%s:evil" % outside]) == cli.EXIT_PROBLEMS
    assert "not a single path component" in capsys.readouterr().err
    assert not marker.exists()


def test_plain_names_still_find_agents_in_the_directories(tmp_path, capsys):
    """The confinement must not refuse what is legitimately inside (the test can fail:
    a check that refuses everything makes this agent 'not found' or an error)."""
    agents_dir = tmp_path / "agents"
    agents_dir.mkdir()
    marker = tmp_path / "ran"
    real = agents_dir / "Plain"
    real.write_text("#!/bin/sh\ntouch %s\ncat <<'EOF'\n<resource-agent name=\"Plain\">"
                    "<parameters/><actions><action name=\"start\" timeout=\"20s\"/>"
                    "<action name=\"stop\" timeout=\"20s\"/><action name=\"monitor\" "
                    "timeout=\"20s\" interval=\"10s\"/></actions></resource-agent>\nEOF\n"
                    % marker)
    real.chmod(stat.S_IRWXU)
    os.symlink("Plain", str(agents_dir / "Alias"))     # a symlink that stays inside is fine
    spec = tmp_path / "spec.toml"
    spec.write_text('[cluster]\nnodes = ["n1"]\nstonith-enabled = false\n'
                    '[[resource]]\nname = "a"\nagent = "ocf:x:Plain"\n'
                    '[[resource]]\nname = "b"\nagent = "ocf:x:Alias"\n')
    assert cli.main(["build", str(spec), "--agents-dir", str(agents_dir), "--strict-agents",
                     "-o", str(tmp_path / "out.xml")]) == cli.EXIT_OK, capsys.readouterr().err
    assert marker.exists()


# -- files that hold secrets, names with quotes ------------------------------------------
SECRET = "Fz7-FencePW"
SPEC_WITH_PASSWORD = """\
[cluster]
nodes = ["node1", "node2"]
properties = { "it's-mine" = "x" }
[[fence]]
name = "fence-n1"
agent = "fence_hasf_ipmi"
hosts = ["node1"]
params = { ip = "192.0.2.1", username = "admin", password = "%s" }
[[fence]]
name = "fence-n2"
agent = "fence_hasf_ipmi"
hosts = ["node2"]
params = { ip = "192.0.2.2", username = "admin", password = "%s" }
""" % (SECRET, SECRET)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_apply_to_a_new_cib_file_creates_it_0600(tmp_path, capsys):
    """Real cibadmin/crm_diff/crm_verify on a file CIB.  Mutation: create the file with
    open(path, "w") in apply._ensure_file -> 0644 (umask 022), the test fails."""
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC_WITH_PASSWORD)
    target = tmp_path / "new-cib.xml"
    old = os.umask(0o022)
    try:
        assert cli.main(["apply", str(spec), "--cib-file", str(target)]) == cli.EXIT_OK, \
            capsys.readouterr().err
    finally:
        os.umask(old)
    assert SECRET in target.read_text()          # it does hold the password ...
    assert _mode(target) == 0o600                # ... so nobody else may read it
    # the property whose name has a quote is looked up without an interpolated XPath:
    # applying again finds it and changes nothing (lxml raised XPathEvalError before).
    # Mutation: apply._merge_properties with have.find("nvpair[@name='%s']" % name)
    assert cli.main(["apply", str(spec), "--cib-file", str(target)]) == cli.EXIT_OK
    assert "unchanged" in capsys.readouterr().out
    names = etree.parse(str(target)).getroot().xpath("//nvpair/@name")
    assert "it's-mine" in names


def test_apply_refuses_to_write_through_a_planted_symlink(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC_WITH_PASSWORD)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.symlink(str(victim), str(tmp_path / "link.xml"))
    os.unlink(str(tmp_path / "link.xml"))
    # a dangling link: the file "does not exist", yet O_NOFOLLOW|O_EXCL must not follow it
    os.symlink(str(tmp_path / "created-elsewhere.xml"), str(tmp_path / "link.xml"))
    assert cli.main(["apply", str(spec), "--cib-file", str(tmp_path / "link.xml")]) != 0
    assert not (tmp_path / "created-elsewhere.xml").exists()
    assert victim.read_text() == "precious\n"


def test_build_output_is_0600_and_keeps_an_existing_mode(tmp_path, capsys):
    """Mutation: _emit writing output + ".tmp" with open() -> 0644, predictable name."""
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC_WITH_PASSWORD)
    out = tmp_path / "cib.xml"
    old = os.umask(0o022)
    try:
        assert cli.main(["build", str(spec), "-o", str(out)]) == cli.EXIT_OK
        assert _mode(out) == 0o600 and SECRET in out.read_text()
        out.chmod(0o640)                            # the user's choice for an existing file
        assert cli.main(["build", str(spec), "-o", str(out)]) == cli.EXIT_OK
        assert _mode(out) == 0o640
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cib.xml", "spec.toml"]


def test_scratch_files_are_0600(tmp_path):
    from hasf.cib.tools import Scratch

    old = os.umask(0)
    try:
        with Scratch() as scratch:
            path = scratch.write("cib.xml", "<cib/>")
            assert _mode(path) == 0o600 and _mode(scratch.path) == 0o700
    finally:
        os.umask(old)

