"""`apply` against a real one-node corosync + Pacemaker (tests/support/pacemaker.py):
the CIB tools run inside the node through an argv prefix (nsenter), the resources really
start under pacemaker-execd, and applying the same spec twice changes nothing."""

import time

import pytest
from lxml import etree

from hasf.cib import apply as applying
from hasf.cib import cli, expand, spec
from hasf.cib.agents import AgentCatalog
from hasf.cib.tools import Tools
from testagents import install_test_agent

pacemaker = pytest.importorskip("support.pacemaker")
pytestmark = [pytest.mark.pacemaker, pytest.mark.slow]

SPEC = """
[cluster]
name = "live"
nodes = ["node1"]
stonith-enabled = false
[resource-defaults]
resource-stickiness = 10
[[resource]]
name = "base"
agent = "ocf:pacemaker:Dummy"
clone = true
[[resource]]
name = "app"
agent = "ocf:hasf:HasfTest"
params = { fake = "live" }
monitor = "10s"
prefer = "node1"
after = ["base"]
with = ["base"]
"""


def wanted(agent_dir, text=SPEC):
    catalog = AgentCatalog(dirs=[agent_dir], use_source=False)
    cib, problems = expand.expand(spec.loads(text), catalog, schema="pacemaker-3.9")
    assert not problems.errors and not problems.warnings, problems.warnings
    return cib.root


def running(cluster):
    """{resource id: [nodes]} of started resources, as crm_mon sees them."""
    out = {}
    for rsc in cluster.status().iter("resource"):
        if rsc.get("role") == "Started":
            out.setdefault(rsc.get("id"), []).extend(n.get("name") for n in rsc.iter("node"))
    return out


def epoch(cluster):
    root = etree.fromstring(cluster.cib_xml().encode())
    return root.get("admin_epoch"), root.get("epoch")


def wait_for(predicate, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError("timed out")


def test_apply_to_a_live_cluster_twice(tmp_path, capsys):
    agent_dir = str(tmp_path / "agents")
    install_test_agent(agent_dir)
    with pacemaker.PacemakerCluster(
            ["node1"], extra_binds=[(agent_dir, "/usr/lib/ocf/resource.d/hasf")]) as cluster:
        cluster.wait_online(60)
        tools = Tools(prefix=cluster.nodes["node1"].host.argv([]))
        assert tools.describe().startswith("live CIB via nsenter")

        first = applying.apply(wanted(agent_dir), tools)
        assert first.changed, first.describe()
        wait_for(lambda: running(cluster).get("app") == ["node1"]
                 and running(cluster).get("base") == ["node1"])

        before = epoch(cluster)
        second = applying.apply(wanted(agent_dir), tools)
        assert not second.changed and second.describe().startswith("unchanged")
        assert epoch(cluster) == before
        # the same through the CLI: --via is the argv prefix (split, never run by a shell)
        spec_path = tmp_path / "live.toml"
        spec_path.write_text(SPEC)
        via = " ".join(cluster.nodes["node1"].host.argv([]))
        assert cli.main(["apply", str(spec_path), "--via", via, "--agents-dir", agent_dir,
                         "--schema", "pacemaker-3.9"]) == 0
        assert "unchanged: live CIB via nsenter" in capsys.readouterr().out
        assert epoch(cluster) == before

        live = etree.fromstring(cluster.cib_xml().encode())
        names = {n.get("name"): n.get("value") for n in live.iterfind(
            "configuration/crm_config/cluster_property_set/nvpair")}
        assert names["stonith-enabled"] == "false"
        assert "dc-version" in names and "dc-deadtime" in names   # the cluster's own, kept
        assert live.find(".//rsc_location[@id='location-app-node1-INFINITY']") is not None

        # a changed spec is applied as a change, then again as "unchanged"
        changed = SPEC.replace('fake = "live"', 'fake = "changed"')
        third = applying.apply(wanted(agent_dir, changed), tools)
        assert third.changed and "changed" in third.diff
        assert not applying.apply(wanted(agent_dir, changed), tools).changed


def test_adopt_reads_the_live_cib(tmp_path, capsys):
    """`hasf-cib adopt --via` reads a running Pacemaker's CIB (cibadmin --query inside the
    node) holding the lab's ClusterLabs resources -- stop-all-resources keeps them from
    starting -- and the spec it prints builds and verifies.  Mutation: adopt.read() querying a
    Tools() of its own instead of the one given (--via lost: the host has no CIB, rc 4)."""
    import os

    root_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cib_path = tmp_path / "clusterlabs.xml"
    assert cli.main(["build", os.path.join(root_dir, "lab", "clusterlabs-lab.toml"),
                     "-o", str(cib_path)]) == 0
    lab = etree.parse(str(cib_path)).getroot().find("configuration")
    with pacemaker.PacemakerCluster(["node1"]) as cluster:
        cluster.wait_online(60)
        run = cluster.run
        assert run("node1", ["crm_attribute", "-n", "stop-all-resources", "-v", "true"],
                   check=True)
        run("node1", ["cibadmin", "-C", "-o", "nodes", "-X", '<node id="2" uname="node2"/>'],
            check=True)
        for section in ("resources", "constraints"):
            run("node1", ["cibadmin", "--replace", "-o", section, "--xml-pipe"],
                input=etree.tostring(lab.find(section)).decode(), check=True)
        capsys.readouterr()
        via = " ".join(cluster.nodes["node1"].host.argv([]))
        assert cli.main(["adopt", "--via", via]) == 0
        text = capsys.readouterr().out
    assert "live CIB via nsenter" in text
    assert 'agent = "fence_hasf_ipmi"' in text and 'name = "vm1"' in text
    assert 'stop-all-resources = "true"' in text
    spec_path = tmp_path / "adopted.toml"
    spec_path.write_text(text)
    assert cli.main(["verify", str(spec_path)]) == 0
    assert "crm_verify (rc 0)" in capsys.readouterr().out
