"""The scenario spec: the demo expands to the seed's whole configuration; bad specs list
every problem at once and nothing is written."""

import os

import pytest

from hasf.cib import cli, expand, spec
from hasf.cib.agents import AgentCatalog
from hasf.cib.errors import SpecError

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.join(HERE, "..", "cib", "examples", "hasf-demo.toml")
NO_AGENTS = dict(use_source=False, use_installed=False)


def demo_cib():
    cib, problems = expand.expand(spec.load(DEMO), AgentCatalog(**NO_AGENTS))
    assert not problems.errors
    return cib.root


def constraints(root, tag):
    return root.findall("configuration/constraints/" + tag)


def test_demo_has_every_step_of_the_seed():
    root = demo_cib()
    props = {p.get("name"): p.get("value") for p in root.iter("nvpair")
             if p.getparent().tag == "cluster_property_set"}
    assert props == {"stonith-enabled": "true", "stonith-action": "reboot",
                     "no-quorum-policy": "ignore"}
    assert [n.get("uname") for n in root.iter("node")] == ["node1", "node2"]
    # power fencing that verifies: one IPMI device per BMC, the race delay on one of them
    for node in ("node1", "node2"):
        fence = root.find(".//primitive[@id='fence-%s']" % node)
        assert fence.get("class") == "stonith" and fence.get("type") == "fence_hasf_ipmi"
        assert fence.find(".//nvpair[@name='pcmk_host_list']").get("value") == node
    fence = root.find(".//primitive[@id='fence-node1']")
    assert fence.find(".//nvpair[@name='pcmk_delay_max']").get("value") == "15s"
    # SAN: target + LUN grouped and pinned to node2 by a rule
    san = root.find(".//group[@id='san']")
    assert [p.get("type") for p in san] == ["iSCSITarget", "iSCSILogicalUnit"]
    rule = root.find(".//rsc_location[@rsc='san']/rule")
    assert rule.get("score") == "-INFINITY"
    assert rule.find("expression").attrib["value"] == "node2"
    # cloned stores, initiator and membership; notify only on the membership clone
    clones = {c.get("id"): {n.get("name"): n.get("value") for n in c.find("meta_attributes")}
              for c in root.iter("clone")}
    assert set(clones) == {"iscsi-initiator-clone", "ocfs2-membership-clone",
                           "imagestore-clone", "configstore-clone"}
    assert all(m["interleave"] == "true" for m in clones.values())
    assert [c for c, m in clones.items() if m.get("notify") == "true"] == ["ocfs2-membership-clone"]
    # vm1: monitor op, location INFINITY node1, after and with both stores
    vm = root.find(".//primitive[@id='vm1']")
    assert vm.find("operations/op[@name='monitor']").get("interval") == "10s"
    loc = root.find(".//rsc_location[@rsc='vm1']")
    assert (loc.get("node"), loc.get("score")) == ("node1", "INFINITY")
    orders = {(o.get("first"), o.get("then")) for o in constraints(root, "rsc_order")}
    colos = {(c.get("rsc"), c.get("with-rsc")) for c in constraints(root, "rsc_colocation")}
    for store in ("imagestore-clone", "configstore-clone"):
        assert ("iscsi-initiator-clone", store) in orders          # stores after the initiator
        assert ("ocfs2-membership-clone", store) in orders         # OCFS2 after membership
        assert (store, "vm1") in orders and ("vm1", store) in colos
    assert ("san", "iscsi-initiator-clone") in orders
    assert all(o.get("score") is None and o.get("kind") == "Mandatory"
               for o in constraints(root, "rsc_order"))


def test_same_input_same_output():
    from hasf.cib.build import serialize
    assert serialize(demo_cib()) == serialize(demo_cib())


BAD = """
[cluster]
nodes = ["node1", "node2", "node1"]
[[fence]]
name = "ipmi1"
agent = "fence_hasf_ipmi"
hosts = ["node1"]
[fencing-topology]
node1 = ["ipmi1", "ghost-device"]
[[store]]
name = "imagestore"
device = "/dev/sdb1"
directory = "/images"
fstype = "ext4"
[[store]]
name = "imagestore"
device = "/dev/sdb2"
directory = "/config"
[[vm]]
name = "vm1"
config = "/etc/vm1"
prefer = "node3"
prefered = "node1"
[[resource]]
name = "web"
agent = "ocf:heartbeat:apache"
after = ["vm9"]
"""


def test_bad_spec_lists_every_problem_at_once():
    with pytest.raises(SpecError) as info:
        spec.loads(BAD, "bad.toml")
    text = "\n".join(info.value.problems)
    for expected in ("node 'node1' is listed twice",
                     "unknown node 'node3'",                            # unknown node in a constraint
                     "duplicate name 'imagestore'",                     # duplicate names
                     "node node2 has no fence device",                  # missing fence device
                     "unknown fence device 'ghost-device'",
                     "fstype 'ext4' is not cluster-safe",               # clone of non-cluster fs
                     "unknown key 'prefered'",
                     "unknown resource 'vm9'"):
        assert expected in text, text
    assert str(info.value).startswith("bad.toml has %d problems" % len(info.value.problems))


def test_no_fence_device_at_all_is_a_problem_unless_stonith_disabled():
    base = '[cluster]\nnodes = ["a", "b"]\n'
    with pytest.raises(SpecError, match="no \\[\\[fence\\]\\] device"):
        spec.loads(base)
    assert spec.loads(base.replace("]\n", "]\nstonith-enabled = false\n", 1)).fences == []


def test_non_cluster_filesystem_is_fine_when_not_cloned():
    s = spec.loads('[cluster]\nnodes = ["a"]\nstonith-enabled = false\n'
                   '[[store]]\nname = "scratch"\ndevice = "/dev/x"\ndirectory = "/x"\n'
                   'fstype = "ext4"\nclone = false\n')
    cib, _ = expand.expand(s, AgentCatalog(**NO_AGENTS))
    assert cib.root.find(".//clone") is None
    assert cib.root.find(".//primitive[@id='scratch']") is not None


def test_cli_writes_nothing_for_a_bad_spec(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD)
    out = tmp_path / "cib.xml"
    assert cli.main(["build", str(bad), "-o", str(out)]) == cli.EXIT_PROBLEMS
    err = capsys.readouterr().err
    assert "unknown node 'node3'" in err and "duplicate name" in err
    assert "nothing was written" in err
    assert not out.exists()
    cib_file = tmp_path / "live.xml"
    assert cli.main(["apply", str(bad), "--cib-file", str(cib_file)]) == cli.EXIT_PROBLEMS
    assert not cib_file.exists()


def test_node_named_like_a_resource_breaks_nothing():
    text = open(DEMO).read().replace('"node1"', '"vm1"').replace('"node2"', '"imagestore"')
    text = text.replace("node1 = ", "vm1 = ").replace("node2 = ", "imagestore = ")
    s = spec.loads(text)
    cib, problems = expand.expand(s, AgentCatalog(**NO_AGENTS))
    root = cib.root
    assert root.find(".//rsc_location[@rsc='vm1']").get("id") == "location-vm1-vm1-INFINITY"
    ids = [el.get("id") for el in root.iter() if el.get("id") and el.tag != "node"]
    assert len(ids) == len(set(ids))
    from hasf.cib import simulate, verify
    assert verify.validate(root) and verify.verify(root)
    steps = simulate.simulate(root)
    assert steps[0].placement["vm1"] == ["vm1"]
    assert steps[1].fenced == ["vm1"] and steps[1].placement["vm1"] == ["imagestore"]
    assert steps[2].placement["vm1"] == ["vm1"]


def test_user_name_colliding_with_generated_id_is_resolved_predictably():
    text = open(DEMO).read().replace('name = "vm1"', 'name = "imagestore-clone"')
    cib, _ = expand.expand(spec.loads(text), AgentCatalog(**NO_AGENTS))
    clone_ids = sorted(c.get("id") for c in cib.root.iter("clone"))
    assert "imagestore-clone-1" in clone_ids
    assert cib.root.find(".//primitive[@id='imagestore-clone']") is not None
    from hasf.cib import verify
    assert verify.validate(cib.root)


@pytest.mark.parametrize("nodes,store,policy", [
    (2, True, "ignore"), (3, True, "freeze"), (3, False, "stop"), (1, False, "stop")])
def test_default_no_quorum_policy(nodes, store, policy):
    names = ", ".join('"n%d"' % i for i in range(1, nodes + 1))
    text = '[cluster]\nnodes = [%s]\nstonith-enabled = false\n' % names
    if store:
        text += '[[store]]\nname = "s"\ndevice = "/dev/x"\ndirectory = "/x"\n'
    assert spec.loads(text).properties["no-quorum-policy"] == policy
    explicit = text.replace("stonith-enabled", 'no-quorum-policy = "demote"\nstonith-enabled')
    assert spec.loads(explicit).properties["no-quorum-policy"] == "demote"


def test_installed_package_ships_the_demo_and_prints_it(tmp_path):
    import subprocess
    import sys
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(target), os.path.join(HERE, "..")],
                   check=True, capture_output=True)
    shipped = target / "hasf" / "cib" / "examples" / "hasf-demo.toml"
    assert shipped.read_text() == open(DEMO).read()
    proc = subprocess.run([sys.executable, "-I", "-c",
                           "import sys; sys.path.insert(0, %r); from hasf.cib.cli import main; "
                           "sys.exit(main(['example']))" % str(target)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == open(DEMO).read()


def test_ocfs2_addresses_checked_and_passed_to_the_membership_agent():
    base = open(DEMO).read()
    with pytest.raises(SpecError) as info:
        spec.loads(base.replace('node2 = "192.168.10.2"', 'node3 = "not-an-ip"'))
    text = str(info.value)
    assert "addresses.node3 must be an IPv4 address" in text and "missing: node2" in text
    cib, _ = expand.expand(spec.loads(base), AgentCatalog(**NO_AGENTS))
    members = cib.root.find(".//primitive[@id='ocfs2-membership']")
    params = {nv.get("name"): nv.get("value") for nv in members.iter("nvpair")}
    assert params["nodes"] == "node1:192.168.10.1 node2:192.168.10.2"
    assert params["cluster_name"] == "ocfs2"
