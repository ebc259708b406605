"""`hasf-cib adopt`: a ClusterLabs CIB read back as the hasf spec, or its problems.

The ClusterLabs CIB is the lab's (lab/clusterlabs-lab.toml built by
hasf-cib: VirtualDomain, Filesystem, iSCSITarget/LU, iscsi, fence_ipmilan);
the spec adopt prints is built again and checked by Pacemaker's crm_verify
(hasf-cib verify).  The live path reads through `cibadmin --query` with
CIB_file (Pacemaker's own file-backed CIB), the same runner wrapper as
`apply`.
"""

import copy
import os
import random
import subprocess
import sys

import pytest
from lxml import etree

from hasf.cib import adopt, build, cli
from hasf.cib.errors import CibError, SpecError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB = os.path.join(ROOT, "lab", "clusterlabs-lab.toml")
#: a billion laughs: ten levels of tenfold entities
LAUGHS = ('<?xml version="1.0"?><!DOCTYPE cib [<!ENTITY a0 "aaaaaaaaaa">%s]><cib><configuration>'
          '<nodes><node id="1" uname="&a9;"/></nodes></configuration></cib>' % "".join(
              '<!ENTITY a%d "%s">' % (i, ("&a%d;" % (i - 1)) * 10) for i in range(1, 10))
          ).encode()


def hasf_cib(*args, env=None):
    return subprocess.run([sys.executable, "-m", "hasf.cib.cli"] + list(args),
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **(env or {})))


@pytest.fixture(scope="module")
def clusterlabs_cib(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("adopt") / "clusterlabs.xml")
    built = hasf_cib("build", LAB, "-o", path)
    assert built.returncode == 0, built.stderr
    return path


def _with(cib_path, tmp_path, edit):
    """A copy of the CIB changed by edit(root), as a file."""
    root = build.parse_file(cib_path)
    edit(root)
    out = tmp_path / "edited.xml"
    out.write_bytes(etree.tostring(root))
    return str(out)


def _primitive(root, rid):
    return next(p for p in root.iter("primitive") if p.get("id") == rid)


def _set_param(primitive, name, value):
    attrs = primitive.find("instance_attributes")
    etree.SubElement(attrs, "nvpair", id="%s-x-%s" % (primitive.get("id"), name), name=name,
                     value=value)


def test_round_trip_builds_and_verifies(clusterlabs_cib, tmp_path):
    """CIB (ClusterLabs' agents) -> adopt -> spec -> hasf-cib build -> crm_verify.
    Mutation: adopt_constraints dropping the VM's locations (prefer) -- the rebuilt CIB then
    lacks location-vm1-node1-INFINITY."""
    adopted = hasf_cib("adopt", clusterlabs_cib)
    assert adopted.returncode == 0, adopted.stderr
    assert "Traceback" not in adopted.stderr
    assert "note: resource imagestore: its ops are not carried over" in adopted.stderr
    assert "fence device fence-node1: its ops" not in adopted.stderr  # monitor 60s: as built
    spec = tmp_path / "adopted.toml"
    spec.write_text(adopted.stdout)
    verified = hasf_cib("verify", str(spec))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "crm_verify (rc 0)" in verified.stdout
    rebuilt = tmp_path / "rebuilt.xml"
    assert hasf_cib("build", str(spec), "-o", str(rebuilt)).returncode == 0
    old, new = build.parse_file(clusterlabs_cib), build.parse_file(str(rebuilt))
    agents = {p.get("id"): adopt.agent_of(p) for p in new.iter("primitive")}
    assert agents == {"fence-node1": "fence_hasf_ipmi", "fence-node2": "fence_hasf_ipmi",
                      "san-target": "ocf:hasf:iSCSITarget",
                      "san-lun1": "ocf:hasf:iSCSILogicalUnit",
                      "iscsi-initiator": "ocf:hasf:iscsi",
                      "ocfs2-membership": "ocf:hasf:OCFS2Membership",
                      "imagestore": "ocf:hasf:Filesystem", "configstore": "ocf:hasf:Filesystem",
                      "vm1": "ocf:hasf:VirtualMachine"}
    ids = {e.get("id") for e in old.iter() if e.get("id")}
    new_ids = {e.get("id") for e in new.iter() if e.get("id")}
    # the same resources, constraints and attributes; plus the LU's identity written out
    assert new_ids - ids == {"san-lun1-instance_attributes-scsi_id",
                             "san-lun1-instance_attributes-scsi_sn",
                             "imagestore-instance_attributes-fast_stop",
                             "configstore-instance_attributes-fast_stop"}
    assert ids - new_ids == set()
    lun = _primitive(new, "san-lun1")
    values = {n.get("name"): n.get("value") for n in lun.iter("nvpair")}
    assert values["scsi_id"] == "san-lun1" and values["scsi_sn"] == "e693254a"  # md5[:8]
    store = _primitive(new, "imagestore")
    assert {n.get("name"): n.get("value") for n in store.iter("nvpair")}["fast_stop"] == "false"
    vm = _primitive(new, "vm1")
    assert {n.get("name"): n.get("value") for n in vm.find("instance_attributes")} == {
        "config": "/etc/xen/vm/vm1.xml", "hypervisor": "qemu:///system",
        "migration_transport": "ssh", "force_stop": "true"}


def test_live_cib_through_cibadmin(clusterlabs_cib):
    """No file: `cibadmin --query` (here against Pacemaker's CIB_file) gives the same spec.
    Mutation: adopt.read ignoring tools and reading nothing."""
    from_file = hasf_cib("adopt", clusterlabs_cib)
    live = hasf_cib("adopt", env={"CIB_file": clusterlabs_cib})
    assert live.returncode == 0, live.stderr
    body = [line for line in live.stdout.splitlines() if not line.startswith("#")]
    assert body == [line for line in from_file.stdout.splitlines() if not line.startswith("#")]
    assert "live CIB" in live.stdout or "CIB_file" in live.stdout


def test_refused_and_unknown_are_problems_all_at_once(clusterlabs_cib, tmp_path):
    """Mutation: Adopter.params not calling parse_params (refusals slip into the spec); or
    GENERATED_CLONE_META taking any name (clone-max silently dropped); or no_meta() silent."""
    def edit(root):
        vm = _primitive(root, "vm1")
        _set_param(vm, "sync_config_on_stop", "true")
        _set_param(vm, "migrate_options", "--dname other")
        _set_param(vm, "stateless", "false")            # harmless: dropped with a note
        resources = root.find("configuration/resources")
        etree.SubElement(resources, "primitive", id="vip", attrib={
            "class": "ocf", "provider": "heartbeat", "type": "IPaddr2"})
        constraints = root.find("configuration/constraints")
        etree.SubElement(constraints, "rsc_colocation", id="odd", rsc="vm1",
                         attrib={"with-rsc": "fence-node1", "score": "100"})
        clone_meta = next(c for c in root.iter("clone") if c.get("id") == "imagestore-clone") \
            .find("meta_attributes")
        etree.SubElement(clone_meta, "nvpair", id="imagestore-clone-max", name="clone-max",
                         value="1")
        san = next(g for g in root.iter("group") if g.get("id") == "san")
        etree.SubElement(etree.SubElement(san, "meta_attributes", id="san-meta"), "nvpair",
                         id="san-meta-target-role", name="target-role", value="Stopped")
    result = hasf_cib("adopt", _with(clusterlabs_cib, tmp_path, edit))
    assert result.returncode == 1, result.stdout
    assert result.stdout == ""
    err = result.stderr
    assert "Traceback" not in err
    assert "sync_config_on_stop (ocf:heartbeat:VirtualDomain) is not taken by hasf: csync2" \
        in err
    assert "virsh's --dname" in err
    assert "agent ocf:heartbeat:IPaddr2 has no hasf counterpart" in err
    assert "constraint odd: this colocation has no form in a hasf spec" in err
    assert "clone imagestore-clone: clone meta attributes clone-max have no form" in err
    assert "group san: meta attributes target-role have no form" in err
    assert "stateless" not in err.split("problem")[1]
    assert "nothing was written" in err


def test_harmless_refused_value_dropped_with_a_note(clusterlabs_cib, tmp_path):
    """Mutation: Refused.passes() ignoring OFF -> stateless=false becomes a problem."""
    result = hasf_cib("adopt", _with(clusterlabs_cib, tmp_path, lambda root: _set_param(
        _primitive(root, "vm1"), "stateless", "false")))
    assert result.returncode == 0, result.stderr
    assert "note: resource vm1: stateless=false dropped" in result.stderr
    assert "stateless" not in result.stdout


def test_fence_ipmilan_without_lanplus_keeps_ipmi_1_5(clusterlabs_cib, tmp_path):
    """fence_ipmilan's unset lanplus is IPMI 1.5; hasf's is RMCP+.  Mutation: an empty
    UNSET_MEANS (the BMC would be spoken to differently after the switch)."""
    def edit(root):
        fence = _primitive(root, "fence-node1")
        attrs = fence.find("instance_attributes")
        attrs.remove(next(n for n in attrs if n.get("name") == "lanplus"))
    result = hasf_cib("adopt", _with(clusterlabs_cib, tmp_path, edit))
    assert result.returncode == 0, result.stderr
    assert 'password_script = "/etc/hasf/bmc-node1.sh", lanplus = "0" }' in result.stdout
    assert "lanplus=0 written out (fence_ipmilan's default" in result.stderr


def test_xen_and_o2cb(clusterlabs_cib, tmp_path):
    """Xen's xmfile is refused with the hasf way; Xen's utilization default is kept;
    ocf:pacemaker:o2cb cannot become OCFS2Membership without addresses.  Mutation:
    keep_defaults not writing Xen's autoset_utilization_* = false."""
    def to_xen(root):
        vm = _primitive(root, "vm1")
        vm.set("type", "Xen")
        for nvpair in list(vm.find("instance_attributes")):
            if nvpair.get("name") not in ("force_stop",):
                vm.find("instance_attributes").remove(nvpair)
        vm.find("instance_attributes").remove(vm.find("instance_attributes")[0])
        _set_param(vm, "name", "vm1")

    result = hasf_cib("adopt", _with(clusterlabs_cib, tmp_path, to_xen))
    assert result.returncode == 0, result.stderr
    assert 'autoset_utilization_cpu = "false"' in result.stdout
    assert 'autoset_utilization_hv_memory = "false"' in result.stdout

    def xmfile(root):
        to_xen(root)
        _set_param(_primitive(root, "vm1"), "xmfile", "/etc/xen/vm/vm1")
    result = hasf_cib("adopt", _with(clusterlabs_cib, tmp_path, xmfile))
    assert result.returncode == 1
    assert "xmfile (ocf:heartbeat:Xen) is not taken by hasf: hasf drives Xen through " \
           "libvirt" in result.stderr

    def o2cb(root):
        member = _primitive(root, "ocfs2-membership")
        member.set("provider", "pacemaker")
        member.set("type", "o2cb")
        member.remove(member.find("instance_attributes"))
    result = hasf_cib("adopt", _with(clusterlabs_cib, tmp_path, o2cb))
    assert result.returncode == 1
    assert "ocf:pacemaker:o2cb: OCFS2Membership runs OCFS2's own o2cb stack" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("content,expected", [
    (b"", "not XML"), (b"\x00\xff\xfe garbage", "not XML"), (b"<cib><oops></cib>", "not XML"),
    (b"<html><body/></html>", "not a CIB"), (b"<cib/>", "not a CIB"),
    (LAUGHS, "Maximum entity amplification"),
    (b'<cib><configuration><nodes><node id="1" uname="node 1"/></nodes></configuration></cib>',
     "is not a host name"),
])
def test_hostile_input_is_a_clear_error(tmp_path, content, expected):
    """Mutation: read() without build.parse_file's XMLSyntaxError handling -> a traceback."""
    path = tmp_path / "hostile.xml"
    path.write_bytes(content)
    result = hasf_cib("adopt", str(path))
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("hasf-cib:"), result.stderr
    assert expected in result.stderr, result.stderr


def test_missing_file_is_a_clear_error(tmp_path):
    result = hasf_cib("adopt", str(tmp_path / "nope.xml"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "nope.xml" in result.stderr


def _topology_and_depth(root):
    """A fencing topology and an OCF_CHECK_LEVEL on a store's monitor, as users have them."""
    cfg = root.find("configuration")
    topo = etree.SubElement(cfg, "fencing-topology")
    for index, node in ((1, "node1"), (1, "node2")):
        etree.SubElement(topo, "fencing-level", id="fl-%s-%d" % (node, index), target=node,
                         index=str(index), devices="fence-%s" % node)
    monitor = next(op for op in _primitive(root, "imagestore").iter("op")
                   if op.get("name") == "monitor")
    attrs = etree.SubElement(monitor, "instance_attributes", id="imagestore-monitor-depth")
    etree.SubElement(attrs, "nvpair", id="imagestore-monitor-depth-level",
                     name="OCF_CHECK_LEVEL", value="20")


def test_fencing_topology_and_check_level_carry_over(clusterlabs_cib, tmp_path):
    """Mutation: Adopter.topology() returning at once (the levels are lost)."""
    adopted = hasf_cib("adopt", _with(clusterlabs_cib, tmp_path, _topology_and_depth))
    assert adopted.returncode == 0, adopted.stderr
    assert "[fencing-topology]" in adopted.stdout
    assert 'node1 = [["fence-node1"]]' in adopted.stdout
    assert "check-level = 20" in adopted.stdout
    spec = tmp_path / "spec.toml"
    spec.write_text(adopted.stdout)
    verified = hasf_cib("verify", str(spec))
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_mangled_cibs_never_crash(clusterlabs_cib):
    """A bounded fuzz: random attributes removed or garbled, elements deleted, moved or
    duplicated -- adopt() gives a spec or a CibError, never another exception.  Mutation:
    _int() replaced by int() (a garbled fencing index or OCF_CHECK_LEVEL -> ValueError)."""
    base = build.parse_file(clusterlabs_cib)
    _topology_and_depth(base)
    rng = random.Random(1414)
    garbage = ["", "-", "x" * 300, "0", "-INFINITY", "nan", "\u00e9\u2028", "1e9", ":"]
    outcomes = set()
    for _round in range(400):
        root = copy.deepcopy(base)
        elements = [e for e in root.iter() if e is not root]
        for _ in range(rng.randint(1, 4)):
            victim = rng.choice(elements)
            choice = rng.random()
            if choice < 0.35 and victim.attrib:
                del victim.attrib[rng.choice(list(victim.attrib))]
            elif choice < 0.7 and victim.attrib:
                victim.set(rng.choice(list(victim.attrib)), rng.choice(garbage))
            elif victim.getparent() is not None and choice < 0.85:
                victim.getparent().remove(victim)
            elif victim.getparent() is not None:
                victim.getparent().append(copy.deepcopy(victim))
        try:
            spec, _notes = adopt.adopt(root)
            from hasf.cib import tomlwrite

            tomlwrite.dumps(spec)
            outcomes.add("spec")
        except SpecError:
            outcomes.add("problems")
        except CibError:
            outcomes.add("error")
    assert "problems" in outcomes and "spec" in outcomes


def test_cli_in_process_writes_private_file(clusterlabs_cib, tmp_path, capsys):
    """-o writes the spec 0600 (it can hold fence passwords)."""
    out = tmp_path / "spec.toml"
    assert cli.main(["adopt", clusterlabs_cib, "-o", str(out)]) == 0
    assert oct(os.stat(out).st_mode & 0o777) == "0o600"
    assert "[[vm]]" in out.read_text()


def test_build_names_the_hasf_way_for_a_clusterlabs_parameter(tmp_path):
    """A spec carrying a ClusterLabs parameter: hasf-cib's agent check says what hasf does
    instead (and only warns about a harmless value).  Mutation: drop the refused() branch
    in hasf.cib.agents.check_primitive (the generic 'unknown parameter' comes back)."""
    spec = tmp_path / "spec.toml"
    spec.write_text('[cluster]\nnodes = ["node1"]\nstonith-enabled = false\n\n[[vm]]\n'
                    'name = "vm1"\nconfig = "/etc/vm1.xml"\n'
                    'params = { sync_config_on_stop = "true", stateless = "false" }\n')
    result = hasf_cib("build", str(spec))
    assert result.returncode == 1 and result.stdout == ""
    assert "sync_config_on_stop (ocf:heartbeat:VirtualDomain) is not taken by hasf: csync2 " \
           "is not run" in result.stderr
    assert "warning: primitive vm1: parameter stateless='false' asks for nothing" \
        in result.stderr
    assert "unknown parameter" not in result.stderr


@pytest.mark.parametrize("command", ["adopt", "apply"])
def test_bad_via_is_a_usage_error(command, tmp_path):
    """An unbalanced quote in --via was a ValueError traceback (apply too).  Mutation:
    cli._via without its ValueError handling."""
    args = [command, "--via", "nsenter 'x"] + ([LAB] if command == "apply" else [])
    result = hasf_cib(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "No closing quotation" in result.stderr


def _to_virsh(root, **extra):
    """fence-node1 as a fence_virsh device reaching node1's hypervisor host."""
    fence = _primitive(root, "fence-node1")
    fence.set("type", "fence_virsh")
    attrs = fence.find("instance_attributes")
    for nvpair in list(attrs):
        if nvpair.get("name") != "pcmk_host_list":
            attrs.remove(nvpair)
    for name, value in dict(dict(ip="10.0.0.5", username="root", ipport="2222", ssh="1",
                                 identity_file="/root/.ssh/fence"), **extra).items():
        _set_param(fence, name, value)


def test_fence_virsh_becomes_fence_hasf_libvirt(clusterlabs_cib, tmp_path):
    """fence_virsh's ssh session into `ip` is the libvirt URI qemu+ssh://login@ip:port/system
    (?keyfile=); the spec builds and verifies.  Mutation: virsh_uri() ignoring ipport."""
    result = hasf_cib("adopt", _with(clusterlabs_cib, tmp_path, _to_virsh))
    assert result.returncode == 0, result.stderr
    assert 'agent = "fence_hasf_libvirt"' in result.stdout
    assert 'uri = "qemu+ssh://root@10.0.0.5:2222/system?keyfile=/root/.ssh/fence"' \
        in result.stdout
    assert "ssh=1 dropped" in result.stderr
    spec = tmp_path / "spec.toml"
    spec.write_text(result.stdout)
    verified = hasf_cib("verify", str(spec))
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.parametrize("extra,expected", [
    ({"use_sudo": "1"}, "use_sudo (stonith:fence_virsh) is not taken by hasf: libvirtd is "
                        "asked directly"),
    ({"password": "secret"}, "fence_virsh logs in to ssh with a password"),
    ({"ssh_options": "-o Foo=bar"}, "ssh_options (stonith:fence_virsh) is not taken"),
])
def test_fence_virsh_settings_hasf_cannot_keep_are_problems(clusterlabs_cib, tmp_path, extra,
                                                             expected):
    """Mutation: adopt_fence._check() skipped (use_sudo/ssh_options silently carried)."""
    result = hasf_cib("adopt", _with(clusterlabs_cib, tmp_path,
                                     lambda root: _to_virsh(root, **extra)))
    assert result.returncode == 1, result.stdout
    assert expected in result.stderr, result.stderr
    assert "secret" not in result.stderr
