"""LEGACY Heartbeat v2 (CRM 2.0.x) rendering: the old vocabulary, nothing modern left,
and -- when a crm.dtd is at hand ($HASF_CRM_DTD) -- valid against it."""

import os
import subprocess

import pytest
from lxml import etree

from hasf.cib import cli, expand, legacy, spec
from hasf.cib.agents import AgentCatalog

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.join(HERE, "..", "cib", "examples", "hasf-demo.toml")


@pytest.fixture(scope="module")
def old():
    cib, _ = expand.expand(spec.load(DEMO), AgentCatalog(use_source=False, use_installed=False))
    return legacy.render(cib.root)


def test_labelled_legacy_and_old_vocabulary(old):
    text = legacy.tostring(old)
    assert text.startswith("<!-- LEGACY Heartbeat v2 (CRM 2.0.x)")
    assert old.get("validate-with") is None and old.find("status") is not None
    for modern in ("stonith-enabled", "no-quorum-policy", "with-rsc", "first=", "kind=",
                   "on-fail", "boolean-op", "pcmk_host_list"):
        assert modern not in text
    names = {p.get("name") for p in old.iter("nvpair")}
    assert {"stonith_enabled", "no_quorum_policy", "default_resource_stickiness", "clone_max",
            "clone_node_max", "hostlist"} <= names
    assert all(p.getparent().tag == "attributes" for p in old.iter("nvpair"))
    assert "migration-threshold" in text.split("<cib")[0]      # listed as left out


def test_constraints_in_the_old_form(old):
    loc = old.find(".//rsc_location[@rsc='vm1']")
    assert loc.get("node") is None
    expr = loc.find("rule/expression")
    assert (loc.find("rule").get("score"), expr.get("attribute"), expr.get("operation"),
            expr.get("value")) == ("INFINITY", "#uname", "eq", "node1")
    order = old.find(".//rsc_order[@from='vm1'][@to='imagestore-clone']")
    assert order.get("type") == "after" and order.get("action") == "start"
    colo = old.find(".//rsc_colocation[@from='vm1'][@to='configstore-clone']")
    assert colo.get("score") == "INFINITY"


def test_stonith_cloned_as_a_cluster_glue_plugin(old):
    clone = old.find(".//clone[@id='fence-node1-clone']")
    prim = clone.find("primitive")
    assert (prim.get("class"), prim.get("type")) == ("stonith", "external/hasf-ipmi")
    pairs = {p.get("name"): p.get("value") for p in clone.find("instance_attributes").iter("nvpair")}
    assert pairs == {"clone_max": "2", "clone_node_max": "1"}
    assert clone.get("globally_unique") == "false"


def test_current_pacemaker_refuses_it(tmp_path, old):
    path = tmp_path / "old.xml"
    path.write_text(legacy.tostring(old))
    assert subprocess.run(["crm_verify", "-x", str(path)], capture_output=True).returncode != 0


@pytest.mark.skipif(not os.environ.get("HASF_CRM_DTD"),
                    reason="set HASF_CRM_DTD to the CRM 2.0.x crm.dtd to check the legacy output")
def test_valid_against_the_old_dtd(tmp_path, capsys):
    out = tmp_path / "old.xml"
    assert cli.main(["build", DEMO, "--legacy-heartbeat-v2", "-o", str(out)]) == 0
    assert "not checked against a DTD" not in capsys.readouterr().err
    etree.parse(str(out), etree.XMLParser(dtd_validation=False))


def test_cli_warns_when_no_dtd(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HASF_CRM_DTD", raising=False)
    out = tmp_path / "old.xml"
    assert cli.main(["build", DEMO, "--legacy-heartbeat-v2", "-o", str(out)]) == 0
    assert "not checked against a DTD" in capsys.readouterr().err
    assert out.read_text().startswith("<!-- LEGACY")


def test_cli_reports_dtd_violations(tmp_path, capsys):
    dtd = tmp_path / "strict.dtd"
    dtd.write_text("<!ELEMENT cib EMPTY>\n")
    out = tmp_path / "old.xml"
    assert cli.main(["build", DEMO, "--legacy-heartbeat-v2", "--dtd", str(dtd), "-o",
                     str(out)]) == cli.EXIT_PROBLEMS
    assert "DTD" in capsys.readouterr().err and not out.exists()


def test_what_the_old_crm_lacks_is_listed_not_invented(tmp_path):
    from test_cib_pacemaker import BIGGER, cib_of
    root = legacy.render(cib_of(BIGGER))
    text = legacy.tostring(root)
    head = text.split("<cib")[0]
    assert "fencing-topology" in head and "pcmk_host_map" in head
    assert root.find(".//fencing-topology") is None and "fencing-level" not in text
    rule = root.find(".//rsc_location[@rsc='db']/rule")
    assert rule.get("boolean_op") == "and" and len(rule.findall("expression")) == 2
    ping = root.find(".//clone[@id='ping-clone']")
    assert {p.get("name"): p.get("value") for p in ping.iter("nvpair")}["clone_max"] == "2"
    dtd = os.environ.get("HASF_CRM_DTD")
    if dtd:
        path = tmp_path / "big.xml"
        path.write_text(text)
        proc = subprocess.run(["xmllint", "--noout", "--dtdvalid", dtd, str(path)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
