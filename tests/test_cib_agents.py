"""Agent awareness: parameters and op timeouts checked against the agent's own meta-data
(run through hasf.runner, or saved meta-data files), notify=true exactly when needed."""

import os

import pytest

from hasf.cib import agents, build, cli, expand, spec
from hasf.cib.agents import AgentCatalog, check_tree
from hasf.cib.build import Op
from hasf.cib.errors import Problems, SpecError
from hasf.cib.ids import IdProvider
from testagents import install_test_agent

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "cib_fixtures")


@pytest.fixture(scope="module")
def agent_dir(tmp_path_factory):
    """A directory holding the real HasfTest agent (hasf.ocf framework) as an executable."""
    directory = tmp_path_factory.mktemp("agents")
    install_test_agent(str(directory))
    return str(directory)


def catalog(*dirs):
    return AgentCatalog(dirs=dirs, use_source=False, use_installed=False)


def check(element, cat, strict=False):
    problems = Problems()
    check_tree(element, cat, problems, strict)
    return problems


def test_reads_meta_data_by_running_the_agent(agent_dir):
    info = catalog(agent_dir).lookup("ocf", "hasf", "HasfTest")
    assert info.source == os.path.join(agent_dir, "HasfTest")
    assert {"state", "fake", "delay", "mode", "passwd", "count"} <= set(info.parameters)
    assert info.parameters["count"].type == "integer"
    assert info.advertised("monitor", depth="10").timeout == 20
    assert info.supports("migrate_to") and not info.needs_notify


def test_unknown_parameter_bad_type_and_short_timeout_all_reported(agent_dir):
    ids = IdProvider()
    prim = build.primitive("t1", "ocf:hasf:HasfTest", ids,
                           {"fake": "x", "colour": "red", "count": "many"},
                           ops=[Op("start", 0, "5s"), Op("monitor", "10s", "20s"),
                                Op("promote", 0, "20s")])
    problems = check(prim, catalog(agent_dir))
    text = "\n".join(problems.errors)
    assert "unknown parameter 'colour' for ocf:hasf:HasfTest" in text
    assert "parameter count='many' must be an integer" in text
    assert "op start interval=0s: timeout 5s is shorter than the 20s" in text
    assert "has no promote action" in text
    assert len(problems.errors) == 4


def test_missing_required_parameter_from_a_meta_data_file():
    ids = IdProvider()
    prim = build.primitive("n1", "ocf:hasf:Notifier", ids, {"port": "1"},
                           ops=[Op("start", 0, "90s"), Op("monitor", "10s", "20s",
                                                          check_level=20)])
    problems = check(prim, catalog(FIXTURES))
    assert problems.errors == [
        "primitive n1: required parameter 'cluster' of ocf:hasf:Notifier is not set"]
    assert "OCF_CHECK_LEVEL=20 is not advertised by ocf:hasf:Notifier (it has 0)" in \
        problems.warnings[0]


def test_fence_agent_meta_data_and_pacemaker_params():
    ids = IdProvider()
    good = build.fence_device("f", "fence_hasf_fixture", ids,
                              {"ip": "10.0.0.9", "host_map": "node1:10.0.0.1"},
                              host_map={"node1": "a"}, ops=[Op("monitor", "60s")])
    assert not check(good, catalog(FIXTURES))     # action/port come from the fencer
    bad = build.fence_device("g", "fence_hasf_fixture", ids, {"ipaddr": "x"},
                             host_list=["node1"])
    errors = check(bad, catalog(FIXTURES)).errors
    assert any("unknown parameter 'ipaddr'" in e for e in errors)
    assert any("required parameter 'ip'" in e for e in errors)
    assert any("required parameter 'host_map'" in e for e in errors)
    assert not any("'hostlist'" in e for e in errors)      # a deprecated alias is not demanded


def test_deprecated_alias_satisfies_and_warns():
    prim = build.fence_device("h", "fence_hasf_fixture", IdProvider(),
                              {"ip": "10.0.0.9", "hostlist": "node1:10.0.0.1"})
    problems = check(prim, catalog(FIXTURES))
    assert problems.errors == []
    assert problems.warnings == ["primitive h: parameter hostlist of stonith:fence_hasf_fixture "
                                 "is deprecated; use host_map"]


def test_installed_clusterlabs_agents_are_checked_too():
    ids = IdProvider()
    prim = build.primitive("fs", "ocf:heartbeat:Filesystem", ids,
                           {"device": "/dev/x", "directory": "/x", "fstyp": "ocfs2"})
    errors = check(prim, AgentCatalog(use_source=False)).errors
    assert any("unknown parameter 'fstyp'" in e and "fstype" in e for e in errors)


def test_missing_agent_is_a_warning_or_with_strict_an_error():
    prim = build.primitive("v", "ocf:hasf:NoSuchAgent", IdProvider())
    problems = check(prim, catalog(FIXTURES))
    assert not problems.errors
    assert "agent ocf:hasf:NoSuchAgent not found (looked in" in problems.warnings[0]
    assert "not checked" in problems.warnings[0]
    strict = check(prim, catalog(FIXTURES), strict=True)
    assert strict.errors and not strict.warnings


def test_failing_meta_data_is_reported(tmp_path):
    broken = tmp_path / "Broken"
    broken.write_text("#!/bin/sh\necho oops >&2\nexit 1\n")
    broken.chmod(0o755)
    prim = build.primitive("b", "ocf:hasf:Broken", IdProvider())
    problems = check(prim, catalog(str(tmp_path)))
    assert "meta-data of ocf:hasf:Broken" in problems.warnings[0] and "oops" in \
        problems.warnings[0]


def test_source_checkout_agents_found_by_importing_their_class(tmp_path):
    manifest = tmp_path / "executables.txt"
    manifest.write_text("ocf HasfTest testagents.hasf_test_agent:main\n")
    cat = AgentCatalog(use_installed=False, manifest=str(manifest))
    info = cat.lookup("ocf", "hasf", "HasfTest")
    assert info is not None and info.source.endswith("(imported)")
    assert "fake" in info.parameters


SPEC = """
[cluster]
nodes = ["node1", "node2"]
stonith-enabled = false
[[resource]]
name = "needy"
agent = "ocf:hasf:Notifier"
params = { cluster = "c1" }
clone = true
[[resource]]
name = "plain"
agent = "ocf:hasf:Plain"
params = { cluster = "c1" }
clone = true
[[resource]]
name = "t"
agent = "ocf:hasf:HasfTest"
params = { fake = "y" }
monitor = "15s"
"""


def test_notify_exactly_when_the_agent_implements_it_and_timeouts_from_meta_data(agent_dir):
    cib, problems = expand.expand(spec.loads(SPEC), catalog(FIXTURES, agent_dir))
    assert not problems.errors and not problems.warnings
    root = cib.root

    def meta(clone_id):
        return {n.get("name"): n.get("value")
                for n in root.find(".//clone[@id='%s']/meta_attributes" % clone_id)}
    assert meta("needy-clone") == {"interleave": "true", "notify": "true"}
    assert meta("plain-clone") == {"interleave": "true"}
    ops = {(o.get("name"), o.get("interval")): o.get("timeout")
           for o in root.find(".//primitive[@id='needy']").iter("op")}
    assert ops == {("start", "0s"): "90s", ("stop", "0s"): "100s", ("monitor", "10s"): "20s"}
    monitor = root.find(".//primitive[@id='t']//op[@name='monitor']")
    assert (monitor.get("interval"), monitor.get("timeout")) == ("15s", "20s")


def test_cli_strict_agents(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(SPEC)
    assert cli.main(["build", str(path), "--agents-dir", FIXTURES]) == cli.EXIT_OK
    out = capsys.readouterr()
    assert "warning: primitive t: agent ocf:hasf:HasfTest" in out.err
    assert "<cib" in out.out
    assert cli.main(["build", str(path), "--agents-dir", FIXTURES, "--strict-agents"]) == \
        cli.EXIT_PROBLEMS
    out = capsys.readouterr()
    assert out.out == "" and "nothing was written" in out.err


def test_manifest_parser_ignores_comments(tmp_path):
    manifest = tmp_path / "m.txt"
    manifest.write_text("# KIND NAME MODULE\n ocf  X  a.b:main  # trailing\nbin hasf-cib "
                        "hasf.cib.cli:main\n")
    assert agents.source_manifest(str(manifest)) == [("ocf", "X", "a.b", "main"),
                                                     ("bin", "hasf-cib", "hasf.cib.cli", "main")]


def test_spec_problems_and_agent_problems_reported_together(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(SPEC.replace('params = { cluster = "c1" }\nclone = true\n[[resource]]\n'
                                 'name = "plain"', 'params = { clusterr = "c1" }\nclone = true\n'
                                 '[[resource]]\nname = "plain"\nprefer = "node7"'))
    assert cli.main(["build", str(path), "--agents-dir", FIXTURES]) == cli.EXIT_PROBLEMS
    err = capsys.readouterr().err
    assert "unknown node 'node7'" in err                               # the spec's own
    assert "unknown parameter 'clusterr' for ocf:hasf:Notifier" in err  # the agent's
    assert "required parameter 'cluster' of ocf:hasf:Notifier" in err


def test_planned_parameter_names_are_clusterlabs_own():
    """The roles hasf has no agent for yet use ClusterLabs' parameter names: with [agents]
    pointing at the installed ClusterLabs agents, the whole demo passes their meta-data
    checks, and op timeouts and allow-migrate come from that meta-data."""
    demo = os.path.join(HERE, "..", "cib", "examples", "hasf-demo.toml")
    text = open(demo).read().replace("[resource-defaults]", """[agents]
vm = "ocf:heartbeat:VirtualDomain"
filesystem = "ocf:heartbeat:Filesystem"
iscsi-target = "ocf:heartbeat:iSCSITarget"
iscsi-lun = "ocf:heartbeat:iSCSILogicalUnit"
initiator = "ocf:heartbeat:iscsi"
membership = "ocf:pacemaker:o2cb"

[resource-defaults]""")
    cib, problems = expand.expand(spec.loads(text), AgentCatalog(use_source=False))
    assert problems.errors == []
    assert [w for w in problems.warnings if "fence_hasf_ipmi" not in w] == []
    root = cib.root
    vm = root.find(".//primitive[@id='vm1']")
    assert vm.get("type") == "VirtualDomain"
    ops = {o.get("name"): o.get("timeout") for o in vm.iter("op")}
    assert ops["start"] == "90s" and ops["migrate_from"] == "60s"   # VirtualDomain's numbers
    assert root.find(".//nvpair[@name='target_iqn']").getparent().getparent().get("type") == \
        "iSCSILogicalUnit"
    assert expand.AGENTS["vm"].agent == "ocf:hasf:VirtualMachine"   # the table is untouched


def test_agents_table_is_checked():
    with pytest.raises(SpecError) as info:
        spec.loads('[cluster]\nnodes = ["a"]\nstonith-enabled = false\n'
                   '[agents]\nfilesystem = "Filesystem"\nweb = "ocf:x:y"\n')
    text = "\n".join(info.value.problems)
    assert "filesystem must name an OCF agent" in text and "unknown key 'web'" in text


def test_cluster_glue_plugin_parameters_from_getinfo_xml():
    ids = IdProvider()
    good = build.fence_device("ipmi-n1", "external/ipmi", ids,
                              {"hostname": "node1", "ipaddr": "10.0.0.1", "userid": "admin",
                               "interface": "lanplus"}, host_list=["node1"])
    cat = AgentCatalog(use_source=False)
    assert check(good, cat).errors == []
    assert cat.lookup("stonith", None, "external/ipmi").source == \
        "/usr/lib/stonith/plugins/external/ipmi"
    bad = build.fence_device("ipmi-n2", "external/ipmi", ids, {"host": "node2"})
    assert any("unknown parameter 'host' for stonith:external/ipmi" in e
               for e in check(bad, cat).errors)
