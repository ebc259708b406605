"""Generated CIBs checked by Pacemaker's own offline tools: xmllint against the installed
schema, crm_verify (exit 0 once crm_simulate -u brought the nodes up), crm_simulate for the
seed's crash test, cibadmin/crm_diff on file CIBs (CIB_file) for apply."""

import os
import subprocess

import pytest
from lxml import etree

from hasf.cib import apply as applying
from hasf.cib import cli, expand, simulate, spec, verify
from hasf.cib.agents import AgentCatalog
from hasf.cib.tools import Tools

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.join(HERE, "..", "cib", "examples", "hasf-demo.toml")
NO_AGENTS = dict(use_source=False, use_installed=False)


def cib_of(text=None, path=DEMO):
    scenario = spec.loads(text) if text is not None else spec.load(path)
    cib, problems = expand.expand(scenario, AgentCatalog(**NO_AGENTS))
    assert not problems.errors
    return cib.root


BIGGER = """
[cluster]
name = "three"
nodes = ["n1", "n2", "n3"]
stonith-action = "off"
properties = { cluster-recheck-interval = "5min" }
[op-defaults]
timeout = "90s"
[[fence]]
name = "ipmi"
agent = "fence_hasf_ipmi"
host-map = { n1 = "bmc-n1", n2 = "bmc-n2", n3 = "bmc-n3" }
[[fence]]
name = "virt-n1"
agent = "external/hasf-libvirt"
hosts = ["n1"]
[[fence]]
name = "demo"
agent = "fence_hasf_demo"
hosts = ["n2", "n3"]
[fencing-topology]
n1 = ["ipmi", "virt-n1"]
n2 = [["ipmi", "demo"]]
[san]
node = "n3"
iqn = "iqn.2026-01.org.example:san"
portal = "10.0.0.3:3260"
implementation = "lio-t"
initiators = ["n1", "n2"]
[[san.lun]]
number = 0
path = "/dev/vdb"
[[san.lun]]
number = 1
path = "/dev/vdc"
[[store]]
name = "images"
device = "/dev/disk/by-label/images"
directory = "/srv/images"
check-level = 10
[[store]]
name = "gfs"
device = "/dev/disk/by-label/gfs"
directory = "/srv/gfs"
fstype = "gfs2"
[[vm]]
name = "web"
config = "/srv/images/web.xml"
hypervisor = "qemu:///system"
prefer = { n2 = 100, n3 = 50 }
avoid = ["n1"]
stores = ["images"]
meta = { allow-migrate = false }
[[vm]]
name = "db"
config = "/srv/images/db.xml"
only = ["n1", "n2"]
ops = [{ name = "monitor", interval = "20s", timeout = "40s", check-level = 10 }]
[[resource]]
name = "ping"
agent = "ocf:pacemaker:ping"
params = { host_list = "10.0.0.254" }
clone = { clone-max = 2 }
[[resource]]
name = "tool"
agent = "ocf:pacemaker:Dummy"
after = ["web", "ping"]
with = ["web"]
"""


@pytest.mark.parametrize("name,text", [("demo", None), ("three-node", BIGGER)])
def test_generated_cib_passes_schema_and_crm_verify(tmp_path, name, text):
    root = cib_of(text)
    schema = verify.validate(root)
    assert schema, schema.messages
    # crm_verify exits 0 (not 78: no errors, no warnings) once crm_simulate -u brought
    # every node up; run it directly here, and through hasf.cib.verify
    for settle in (False, True):
        path = tmp_path / ("up-%s.xml" % settle)
        path.write_text(verify.with_status(root, settle=settle))
        status = etree.parse(str(path)).getroot().find("status")
        assert sorted(n.get("uname") for n in status.iter("node_state")) == \
            sorted(n.get("uname") for n in root.iter("node"))
        assert (status.find(".//lrm_rsc_op") is not None) == settle
        proc = subprocess.run(["crm_verify", "-V", "-x", str(path)], capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stderr + proc.stdout
        assert verify.verify(root, settle=settle)


def test_bigger_scenario_details():
    root = cib_of(BIGGER)
    levels = [(lv.get("target"), lv.get("index"), lv.get("devices"))
              for lv in root.iter("fencing-level")]
    assert levels == [("n1", "1", "ipmi"), ("n1", "2", "virt-n1"), ("n2", "1", "ipmi,demo")]
    ipmi = root.find(".//primitive[@id='ipmi']//nvpair[@name='pcmk_host_map']")
    assert ipmi.get("value") == "n1:bmc-n1;n2:bmc-n2;n3:bmc-n3"
    assert root.find(".//primitive[@id='virt-n1']").get("type") == "external/hasf-libvirt"
    # a single-node device keeps off the node it fences
    assert root.find(".//rsc_location[@id='location-virt-n1-n1--INFINITY']") is not None
    level = root.find(".//primitive[@id='images']//op[@name='monitor']//nvpair")
    assert (level.get("name"), level.get("value")) == ("OCF_CHECK_LEVEL", "10")
    assert root.find(".//primitive[@id='gfs']//nvpair[@name='fstype']").get("value") == "gfs2"
    # gfs2 is not OCFS2: no membership ordering for it
    assert root.find(".//rsc_order[@then='gfs-clone'][@first='ocfs2-membership-clone']") is None
    assert root.find(".//rsc_location[@rsc='db']/rule").get("boolean-op") == "and"
    exprs = root.findall(".//rsc_location[@rsc='iscsi-initiator-clone']/rule/expression")
    assert [(e.get("operation"), e.get("value")) for e in exprs] == [("ne", "n1"), ("ne", "n2")]
    assert root.find(".//primitive[@id='web']/meta_attributes/nvpair").get("value") == "false"
    assert root.find(".//primitive[@id='web']//op[@name='migrate_to']") is None


def test_seed_crash_test_simulated():
    steps = simulate.simulate(cib_of())
    up, fail, back = steps
    assert up.fenced == [] and up.placement["vm1"] == ["node1"]
    for store in ("imagestore-clone", "configstore-clone"):
        assert up.placement[store] == ["node1", "node2"]
        assert fail.placement[store] == ["node2"]
        assert back.placement[store] == ["node1", "node2"]
    assert up.placement["san"] == ["node2"]
    assert fail.fenced == ["node1"] and "Fence (reboot) node1" in fail.actions
    assert fail.placement["vm1"] == ["node2"] and "move vm1 node1 -> node2" in fail.actions
    assert back.fenced == [] and back.placement["vm1"] == ["node1"]
    assert any(a.startswith(("migrate vm1 node2 -> node1", "move vm1 node2 -> node1"))
               for a in back.actions)
    table = simulate.table(steps)
    assert table.splitlines()[2].split() == ["fenced", "-", "node1", "-"]


def test_cli_build_verify_simulate(tmp_path, capsys):
    out = tmp_path / "cib.xml"
    assert cli.main(["build", DEMO, "-o", str(out)]) == 0
    root = etree.parse(str(out)).getroot()
    assert root.tag == "cib" and root.find("status") is None
    assert cli.main(["verify", DEMO]) == 0
    assert cli.main(["verify", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["simulate", DEMO, "--actions"]) == 0
    text = capsys.readouterr().out
    vm_row = [line.split() for line in text.splitlines() if line.startswith("vm1 ")][0]
    assert vm_row == ["vm1", "node1", "node2", "node1"]
    assert "Fence (reboot) node1" in text


def _file_state(path):
    root = etree.parse(str(path)).getroot()
    return root.get("epoch"), etree.tostring(root.find("configuration"))


def test_apply_to_a_file_cib_is_idempotent(tmp_path):
    path = tmp_path / "cib.xml"
    tools = Tools(cib_file=str(path))
    first = applying.apply(cib_of(), tools)
    assert first.changed and path.exists()
    state = _file_state(path)
    again = applying.apply(cib_of(), tools)
    assert not again.changed and again.diff is None
    assert again.describe().startswith("unchanged")
    assert _file_state(path) == state                  # nothing written, epoch untouched
    # a change in the spec is a change in the CIB, and only that
    moved = open(DEMO).read().replace('prefer = "node1"', 'prefer = "node2"')
    change = applying.apply(cib_of(moved), tools)
    assert change.changed and "location-vm1-node2-INFINITY" in change.diff
    assert "imagestore" not in change.diff
    assert not applying.apply(cib_of(moved), tools).changed


def test_apply_keeps_what_it_does_not_own(tmp_path):
    path = tmp_path / "cib.xml"
    tools = Tools(cib_file=str(path))
    applying.apply(cib_of(), tools)
    env = dict(os.environ, CIB_file=str(path))
    subprocess.run(["crm_attribute", "--type", "crm_config", "--name", "cluster-name",
                    "--update", "mine"], env=env, check=True, capture_output=True)
    subprocess.run(["cibadmin", "--create", "-o", "resources", "--xml-text",
                    '<primitive id="stray" class="ocf" provider="pacemaker" type="Dummy"/>'],
                   env=env, check=True, capture_output=True)
    outcome = applying.apply(cib_of(), tools)
    assert outcome.changed                               # the stray resource goes
    assert outcome.warnings == ["removes primitive stray: it is not in the spec"]
    root = etree.parse(str(path)).getroot()
    assert root.find(".//primitive[@id='stray']") is None
    assert root.find(".//nvpair[@name='cluster-name']").get("value") == "mine"
    assert not applying.apply(cib_of(), tools).changed


def test_cli_apply_reports_unchanged(tmp_path, capsys):
    path = tmp_path / "cib.xml"
    assert cli.main(["apply", DEMO, "--cib-file", str(path)]) == 0
    assert "applied to file CIB" in capsys.readouterr().out
    assert cli.main(["apply", DEMO, "--cib-file", str(path)]) == 0
    assert "unchanged" in capsys.readouterr().out


FRAGMENTS = [
    ["location", "vm1", "node2", "50"],
    ["location", "vm1", "--rule", "-INFINITY: #uname ne node1"],
    ["order", "imagestore-clone", "vm1", "--kind", "Optional"],
    ["order", "--set", "imagestore-clone configstore-clone", "--set", "vm1"],
    ["colocation", "vm1", "configstore-clone", "--score", "500"],
    ["vm", "vm2", "--config", "/etc/xen/vm/vm2", "--hypervisor", "xen:///"],
    ["primitive", "pinger", "ocf:pacemaker:ping", "host_list=10.0.0.1",
     "--op", "monitor interval=10s timeout=60s", "--clone"],
    ["fence", "ipmi-n1", "fence_ipmilan", "--host-map", "node1:bmc1", "ip=10.0.0.1",
     "username=admin"],
    ["fencing-level", "node1", "1", "stonith-demo"],
    ["property", "cluster-recheck-interval=5min", "stonith-action=off"],
    ["defaults", "--op", "timeout=90s"],
    ["defaults", "resource-stickiness=200"],
]


@pytest.mark.parametrize("argv", FRAGMENTS, ids=[" ".join(a[:2]) for a in FRAGMENTS])
def test_fragments_load_with_the_printed_cibadmin_command(tmp_path, capsys, argv):
    path = tmp_path / "cib.xml"
    assert cli.main(["build", DEMO, "-o", str(path)]) == 0
    capsys.readouterr()
    assert cli.main(argv[:1] + ["--cib", str(path)] + argv[1:]) == 0
    out = capsys.readouterr()
    hint = [line for line in out.err.splitlines() if line.startswith("# load with: ")][0]
    command = hint[len("# load with: "):].split()
    assert command[0] == "cibadmin"
    proc = subprocess.run(command, input=out.out, text=True, capture_output=True,
                          env=dict(os.environ, CIB_file=str(path)))
    assert proc.returncode == 0, proc.stderr
    root = etree.parse(str(path)).getroot()
    assert verify.validate(root)
    first_id = etree.fromstring(out.out.encode()).iter()
    ids = [el.get("id") for el in first_id if el.get("id") and el.tag != "resource_ref"]
    for item in ids:
        assert root.find(".//*[@id='%s']" % item) is not None, item


def test_fragment_with_a_taken_id_is_refused(tmp_path, capsys):
    path = tmp_path / "cib.xml"
    assert cli.main(["build", DEMO, "-o", str(path)]) == 0
    capsys.readouterr()
    assert cli.main(["location", "--cib", str(path), "vm1", "node1", "INFINITY"]) == 0
    assert 'id="location-vm1-node1-INFINITY-1"' in capsys.readouterr().out
    assert cli.main(["vm", "--cib", str(path), "vm1", "--config", "/x"]) == cli.EXIT_PROBLEMS
    assert "id vm1 already exists" in capsys.readouterr().err


def test_schema_is_the_newest_installed_and_overridable(tmp_path, capsys):
    from hasf.cib.tools import newest_schema
    assert cib_of().get("validate-with") == newest_schema()
    out = tmp_path / "old.xml"
    assert cli.main(["build", DEMO, "--schema", "pacemaker-3.0", "-o", str(out)]) == 0
    root = etree.parse(str(out)).getroot()
    assert root.get("validate-with") == "pacemaker-3.0"
    assert verify.validate(root) and verify.verify(root)
    capsys.readouterr()
    assert cli.main(["build", DEMO, "--schema", "pacemaker-9.9"]) == cli.EXIT_PROBLEMS
    assert "schema pacemaker-9.9 is not installed" in capsys.readouterr().err


def test_fragments_take_default_ops_from_meta_data(capsys):
    assert cli.main(["primitive", "fs", "ocf:heartbeat:Filesystem", "device=/dev/x",
                     "directory=/x", "fstype=ocfs2", "--clone"]) == 0
    root = etree.fromstring(capsys.readouterr().out.encode())
    ops = {(o.get("name"), o.get("interval"), o.get("timeout")) for o in root.iter("op")}
    # what /usr/lib/ocf/resource.d/heartbeat/Filesystem meta-data advertises
    assert ops == {("start", "0s", "60s"), ("stop", "0s", "60s"), ("monitor", "20s", "40s")}
    assert root.tag == "clone" and root.get("id") == "fs-clone"


def test_cli_verify_fails_on_what_crm_verify_rejects(tmp_path, capsys):
    path = tmp_path / "cib.xml"
    assert cli.main(["build", DEMO, "-o", str(path)]) == 0
    root = etree.parse(str(path)).getroot()
    order = root.find(".//rsc_order")
    del order.attrib["kind"]
    order.set("score", "INFINITY")                           # the deprecated order score
    path.write_bytes(etree.tostring(root))
    capsys.readouterr()
    assert cli.main(["verify", str(path), "--no-settle"]) == cli.EXIT_PROBLEMS
    out = capsys.readouterr().out
    assert "ok   schema" in out and "FAIL crm_verify (rc 78) after crm_simulate -u" in out


def test_three_nodes_simulated_with_votequorum_rules():
    root = cib_of(BIGGER)
    up, fail, back = simulate.simulate(root, victim="n2")
    assert [s.quorum for s in (up, fail, back)] == [True, True, True]
    assert up.placement["san"] == ["n3"] and up.placement["web"] == ["n2"]
    assert up.placement["images-clone"] == ["n1", "n2"]      # only where initiators run
    assert fail.fenced == ["n2"]
    assert fail.placement["web"] == []                          # avoids n1, no store on n3
    assert fail.placement["db"] == ["n1"]
    assert back.placement["web"] == ["n2"]
    # two of three nodes gone: no quorum -> no fencing; no-quorum-policy=freeze (the default
    # with cloned cluster filesystems) keeps n3's resources; what ran on n2 cannot be
    # recovered without fencing: the transition is incomplete -- shown, not raised
    steps = [simulate.Step("all up", up=["n1", "n2", "n3"]), simulate.Step("n1 fails", fail=["n1"]),
             simulate.Step("n2 fails", fail=["n2"])]
    steps = simulate.simulate(root, steps=steps)
    assert [s.quorum for s in steps] == [True, True, False]
    assert steps[1].fenced == ["n1"] and steps[1].placement["db"] == ["n2"]
    assert steps[2].fenced == [] and steps[2].errors
    assert root.find(".//nvpair[@name='no-quorum-policy']").get("value") == "freeze"
    assert steps[2].placement["san"] == ["n3"]
    assert not any(a.endswith(" n3") for a in steps[2].actions)
    assert "stop db n2" in steps[2].actions
    assert "INCOMPLETE" in simulate.table(steps)


def test_apply_dry_run_writes_nothing(tmp_path, capsys):
    path = tmp_path / "cib.xml"
    assert cli.main(["apply", DEMO, "--cib-file", str(path), "--dry-run", "--show-diff"]) == 0
    out = capsys.readouterr().out
    assert "would be applied to file CIB" in out and "<diff" in out
    assert not path.exists()
    assert cli.main(["apply", DEMO, "--cib-file", str(path)]) == 0
    before = path.read_bytes()
    moved = tmp_path / "moved.toml"
    moved.write_text(open(DEMO).read().replace('prefer = "node1"', 'prefer = "node2"'))
    capsys.readouterr()
    assert cli.main(["apply", str(moved), "--cib-file", str(path), "--dry-run"]) == 0
    assert "would be applied" in capsys.readouterr().out
    assert path.read_bytes() == before
