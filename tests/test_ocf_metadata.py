"""Meta-data: valid for ocf-tester's DTD and pcs's OCF 1.1 schema, all text escaped.

resource-agents' metadata.rng describes OCF 1.0 and refuses OCF 1.1's `reloadable`
attribute; the OCF 1.1 schema a user's tools check meta-data against is pcs's (pcs
refuses an agent whose meta-data does not validate against it).
"""

import subprocess

import pytest

from hasf import ocf
from hasf.ocf.metadata import build
from testagents.hasf_test_agent import HasfTest

DTD_DIR = "/usr/share/resource-agents"
OCF_1_1_RNG = "/usr/share/pcs/data/ocf-1.1.rng"  # Debian's pcs 0.11


class Nasty(HasfTest):
    name = "Nasty"
    shortdesc = 'short <&"> \' ]]> --'
    longdesc = "long <tag attr=\"x\">&amp; </resource-agent>\n\ttabs"
    parameters = HasfTest.parameters + (
        ocf.Parameter("weird", ocf.String(), default='<&">\n', shortdesc="<&\">",
                      longdesc="& < > \" '"),
    )


def xmllint(args, text):
    return subprocess.run(["xmllint", "--noout"] + args + ["-"], input=text, text=True,
                          capture_output=True, cwd=DTD_DIR, timeout=30)


@pytest.mark.parametrize("agent", [HasfTest, Nasty])
def test_metadata_valid_against_dtd_and_rng(agent):
    """Mutation: emit the plain DOCTYPE (no internal subset) -> the DTD check fails on
    reloadable."""
    text = build(agent)
    assert 'reloadable="1"' in text and '"reload-agent"' in text
    dtd = xmllint(["--valid"], text)
    assert dtd.returncode == 0, dtd.stderr
    rng = xmllint(["--relaxng", OCF_1_1_RNG], text)
    assert rng.returncode == 0, rng.stderr


def test_special_characters_survive_a_round_trip():
    from lxml import etree

    root = etree.fromstring(build(Nasty).encode())
    assert root.findtext("shortdesc") == Nasty.shortdesc
    assert root.findtext("longdesc") == Nasty.longdesc
    weird = root.find("parameters/parameter[@name='weird']")
    assert weird.find("content").get("default") == '<&">\n'
    assert weird.findtext("shortdesc") == '<&">'


def test_metadata_derived_from_declaration():
    from lxml import etree

    root = etree.fromstring(build(HasfTest).encode())
    assert root.get("name") == "HasfTest" and root.get("version") == "1.0"
    assert root.findtext("version") == "1.1"
    params = {p.get("name"): p for p in root.iter("parameter")}
    assert list(params) == [p.name for p in HasfTest.parameters]
    assert params["count"].find("content").get("type") == "integer"
    assert params["delay"].find("content").get("type") == "string"   # DTD has no duration type
    assert "one of: fast, safe" in params["mode"].findtext("longdesc")
    assert params["passwd"].find("content").get("default") is None
    actions = [(a.get("name"), a.get("depth")) for a in root.iter("action")]
    assert ("monitor", "10") in actions and ("meta-data", None) in actions
    assert ("validate-all", None) in actions


def test_meta_data_needs_no_environment(test_agent):
    result = subprocess.run([test_agent, "meta-data"], env={}, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0 and result.stdout.startswith("<?xml")


def _installed_ocf_agents():
    from hasf.cib.agents import source_manifest

    return [(name, module, function) for kind, name, module, function in source_manifest()
            if kind == "ocf"]


@pytest.mark.parametrize("name,module,function", _installed_ocf_agents(),
                         ids=[entry[0] for entry in _installed_ocf_agents()])
def test_every_installed_agent_has_valid_metadata(name, module, function, tmp_path):
    """Each OCF agent `make install` lays out, exec'd as Pacemaker does: meta-data with no
    environment at all, valid for the DTD and the RNG, named like its executable."""
    from testagents import install_test_agent

    directory = str(tmp_path / "agents")
    agent = install_test_agent(directory, name, module, function)
    proc = subprocess.run([agent, "meta-data"], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert '<resource-agent name="%s"' % name in proc.stdout
    for args in (["--valid"], ["--relaxng", OCF_1_1_RNG]):
        check = xmllint(args, proc.stdout)
        assert check.returncode == 0, (args, check.stderr)
