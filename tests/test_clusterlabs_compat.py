"""ClusterLabs configurations carry over: hasf.clusterlabs against the installed agents.

The parameter lists come from the installed ClusterLabs agents' own
meta-data (resource-agents, pacemaker), run here: a parameter they declare
that is neither declared by the hasf agent nor refused by it fails these
tests.  The agents are run in-process through hasf.ocf.main.run, as the
launcher runs them (no libvirtd, tgtd or kernel is touched: the refusal is
decided before any handler).
"""

import io
import os
import shutil
import subprocess

import pytest
from lxml import etree

from hasf import clusterlabs
from hasf.agents import vm_migrate, vm_virsh
from hasf.agents.filesystem import Filesystem
from hasf.agents.iscsi_initiator import ISCSIInitiator
from hasf.agents.iscsi_logical_unit import ISCSILogicalUnit
from hasf.agents.iscsi_target import ISCSITarget
from hasf.agents.virtual_machine import VirtualMachine
from hasf.ocf import main as ocf_main
from hasf.ocfs2_membership.agent import OCFS2Membership
from hasf.stonith import fence_agent, ipmi, libvirt
from hasf.stonith.definition import IGNORED
from hasf.truth import parse_bool

OCF_ROOT = "/usr/lib/ocf"
CLASSES = {"ocf:hasf:VirtualMachine": VirtualMachine, "ocf:hasf:Filesystem": Filesystem,
           "ocf:hasf:iSCSITarget": ISCSITarget, "ocf:hasf:iSCSILogicalUnit": ISCSILogicalUnit,
           "ocf:hasf:iscsi": ISCSIInitiator, "ocf:hasf:OCFS2Membership": OCFS2Membership}
COUNTERPARTS = clusterlabs.all_counterparts()
IDS = [c.agent.replace("stonith:", "") for c in COUNTERPARTS]
README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


GLUE_DIR = "/usr/lib/stonith/plugins"
FENCE = {"stonith:fence_hasf_ipmi": ipmi.DEFINITION,
         "stonith:fence_hasf_libvirt": libvirt.DEFINITION,
         "stonith:external/hasf-ipmi": ipmi.DEFINITION,
         "stonith:external/hasf-libvirt": libvirt.DEFINITION}


def _metadata_command(agent):
    """argv printing the installed ClusterLabs agent's meta-data (OCF, fence-agents, glue)."""
    if agent.startswith("stonith:external/"):
        return [os.path.join(GLUE_DIR, agent.split(":", 1)[1]), "getinfo-xml"]
    if agent.startswith("stonith:"):
        return [shutil.which(agent.split(":", 1)[1]) or agent, "-o", "metadata"]
    _cls, provider, kind = agent.split(":")
    return [os.path.join(OCF_ROOT, "resource.d", provider, kind), "meta-data"]


def clusterlabs_params(agent):
    """{name: default or None} from the installed ClusterLabs agent's own meta-data."""
    argv = _metadata_command(agent)
    path = argv[0]
    assert os.access(path, os.X_OK), "%s is not installed (packaging/debian-packages.txt)" % path
    out = subprocess.run(argv, capture_output=True, timeout=30, check=True,
                         env=dict(os.environ, OCF_ROOT=OCF_ROOT, OCF_FUNCTIONS_DIR=os.path.join(
                             OCF_ROOT, "lib", "heartbeat"))).stdout
    if agent.startswith("stonith:external/"):  # getinfo-xml: the <parameters> element alone
        out = b"<resource-agent>" + out + b"</resource-agent>"
    root = etree.fromstring(out, etree.XMLParser(resolve_entities=False, no_network=True))
    params = {}
    for param in root.iter("parameter"):
        content = param.find("content")
        params[param.get("name")] = content.get("default") if content is not None else None
    assert params, "no parameters in %s's meta-data" % agent
    return params


def run(cls, action, interval="0", **params):
    env = {"OCF_RESOURCE_INSTANCE": "compat", "HA_RSCTMP": "/nonexistent/hasf-compat",
           "OCF_RESKEY_CRM_meta_timeout": "5000", "OCF_RESKEY_CRM_meta_interval": interval}
    env.update(("OCF_RESKEY_" + k, v) for k, v in params.items())
    out, err = io.StringIO(), io.StringIO()
    rc = ocf_main.run(cls, [cls.name, action], env, out, err)
    return rc, err.getvalue()


@pytest.mark.parametrize("counterpart", COUNTERPARTS, ids=IDS)
def test_every_clusterlabs_parameter_is_taken_changed_or_refused(counterpart):
    """Mutation: delete `"sync_config_on_stop"`'s refusal from hasf.clusterlabs (or a name
    from a taken list) -> the installed agent's parameter is unaccounted for."""
    theirs = clusterlabs_params(counterpart.agent)
    listed = counterpart.names
    mine = declared(counterpart.hasf, set(theirs) | set(listed))
    assert len(listed) == len(set(listed)), "a parameter is listed twice"
    assert sorted(set(theirs) - set(listed)) == [], "neither taken, changed nor refused"
    assert sorted(set(listed) - set(theirs)) == [], "listed but not a parameter of theirs"
    accepted = set(counterpart.taken) | set(counterpart.changed)
    assert sorted(accepted - mine) == [], "taken/changed but not declared by hasf"
    assert sorted({r.name for r in counterpart.refused} & mine) == [], "refused yet declared"


def declared(hasf_agent, names):
    """The names among `names` the hasf agent or fence device takes."""
    if hasf_agent in FENCE:
        params = FENCE[hasf_agent].params
        return {n for n in names if params.lookup(n) is not None or n in IGNORED}
    return {p.name for p in CLASSES[hasf_agent].parameters} & set(names)


def hasf_default(hasf_agent, name):
    if hasf_agent in FENCE:
        return FENCE[hasf_agent].params.lookup(name).default
    return CLASSES[hasf_agent].parameter(name).default_text()


def _normal(value):
    """Defaults compared by meaning: unset, empty, 0 and a false flag are alike (a
    fence-agents flag without a default is off), booleans and numbers by value."""
    if value in (None, "", False, 0):
        return ""
    if value is True:
        return True
    text = str(value)
    try:
        return parse_bool(text) or ""
    except ValueError:
        pass
    try:
        return float(text) or ""
    except ValueError:
        return text


@pytest.mark.parametrize("counterpart", COUNTERPARTS, ids=IDS)
def test_taken_parameters_keep_clusterlabs_defaults(counterpart):
    """'taken' means the same meaning, default included.  Mutation: VirtualMachine's
    force_stop default true -> differs from VirtualDomain's 0."""
    theirs = clusterlabs_params(counterpart.agent)
    for name in counterpart.taken:
        mine = hasf_default(counterpart.hasf, name)
        assert _normal(mine) == _normal(theirs[name]), (name, mine, theirs[name])


def test_virtualdomain_utilization_defaults_match():
    """Mutation: autoset_utilization_cpu default=False (as before issue 14)."""
    theirs = clusterlabs_params("ocf:heartbeat:VirtualDomain")
    for attr in ("cpu", "hv_memory", "host_memory"):
        for kind in ("autoset", "unset"):
            name = "%s_utilization_%s" % (kind, attr)
            assert _normal(VirtualMachine.parameter(name).default_text()) == \
                _normal(theirs[name]), name


def _unharmless(refusal):
    for value in ("true", "1024", "/elsewhere", "x"):
        if not refusal.passes(value):
            return value
    raise AssertionError("no value of %s is refused" % refusal.name)


REFUSALS = [(c, r) for c in COUNTERPARTS for r in c.refused if c.hasf not in FENCE]
FENCE_REFUSALS = [(c, r) for c in COUNTERPARTS for r in c.refused if c.hasf in FENCE]


def fence(defn, **params):
    """fence_hasf_* with params on stdin, as Pacemaker's fencer runs it: (rc, stdout, stderr)."""
    stdin = "".join("%s=%s\n" % item for item in params.items())
    out, err = io.StringIO(), io.StringIO()
    rc = fence_agent.run(defn, [], stdin=io.StringIO(stdin), out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("counterpart,refusal", FENCE_REFUSALS,
                         ids=["%s:%s" % (c.agent, r.name) for c, r in FENCE_REFUSALS])
def test_fence_device_refuses_what_it_does_not_take(counterpart, refusal):
    """fence-agents' rule (ignore unknown names with a warning) would drop a fence_virsh
    setting without effect.  Mutation: ParamSet.parse warning instead of refusing."""
    defn = FENCE[counterpart.hasf]
    rc, _out, err = fence(defn, action="metadata", **{refusal.name: _unharmless(refusal)})
    assert rc != 0, err
    assert "parameter %s (%s) is not taken by hasf: %s" % (
        refusal.name, counterpart.agent, refusal.instead) in err
    for value in ("",) + tuple(v for v in refusal.harmless if isinstance(v, str)):
        rc, out, err = fence(defn, action="metadata", **{refusal.name: value})
        assert rc == 0 and "<resource-agent" in out, err


@pytest.mark.parametrize("counterpart,refusal", REFUSALS,
                         ids=["%s:%s" % (c.agent.split(":")[2], r.name) for c, r in REFUSALS])
def test_refused_parameter_fails_validate_all_start_and_monitor(counterpart, refusal):
    """Mutation: drop the `refusals(refused, environ)` term from parse_params (the old
    behaviour: a ClusterLabs parameter silently ignored, validate-all rc 0)."""
    cls = CLASSES[counterpart.hasf]
    value = _unharmless(refusal)
    for action, interval in (("validate-all", "0"), ("start", "0"), ("monitor", "10000")):
        rc, err = run(cls, action, interval, **{refusal.name: value})
        assert rc == 6, (action, err)
        reason = [line for line in err.splitlines() if line.startswith("ocf-exit-reason:")]
        assert reason and "parameter %s (%s) is not taken by hasf: %s" % (
            refusal.name, counterpart.agent, refusal.instead) in reason[-1], err


@pytest.mark.parametrize("counterpart,refusal", REFUSALS,
                         ids=["%s:%s" % (c.agent.split(":")[2], r.name) for c, r in REFUSALS])
def test_harmless_values_of_refused_parameters_pass(counterpart, refusal):
    """An empty value, a switched-off feature or the counterpart's default asks for nothing.
    Mutation: Refused.passes() returning False for "" -> a blank attribute refused."""
    cls = CLASSES[counterpart.hasf]
    for value in ("",) + tuple(v for v in refusal.harmless if isinstance(v, str)) + (
            ("false", "no", "0") if clusterlabs.OFF in refusal.harmless else ()):
        _rc, err = run(cls, "validate-all", **{refusal.name: value})
        assert "not taken by hasf" not in err, (value, err)


def test_stop_goes_on_despite_a_refused_parameter():
    """Refusing a stop could get a node fenced: it warns and stops.  Mutation: remove
    "stop" from the tolerated actions in hasf.ocf.main._dispatch."""
    rc, err = run(VirtualMachine, "stop", name="nosuchdomain-compat",
                  hypervisor="test:///default", backingfile="/images/base.qcow2")
    assert "continuing stop despite: parameter backingfile" in err
    assert rc == 0, err


def test_readme_tables_are_the_modules():
    """The README's tables are generated from the data the agents use.  Mutation: edit a
    note in hasf.clusterlabs without regenerating the README."""
    with open(README) as handle:
        text = handle.read()
    start, end = text.index(clusterlabs.BEGIN), text.index(clusterlabs.END)
    assert text[start:end + len(clusterlabs.END)] + "\n" == clusterlabs.readme_tables()
    for counterpart in COUNTERPARTS:
        for name in counterpart.names:
            assert "| `%s` |" % name in text[start:end]


# --- VirtualDomain's migrate_options --------------------------------------------------------
def virsh_migrate_switches():
    out = subprocess.run(["virsh", "help", "migrate"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    switches = []
    for line in out.split("OPTIONS", 1)[1].splitlines():
        word = line.strip().split(" ", 1)[0].strip("[]")
        if word.startswith("--"):
            switches.append(word)
    assert "--live" in switches and "--migrateuri" in switches, out
    return switches


def test_every_virsh_migrate_switch_is_taken_or_refused():
    """Each switch of the installed virsh is translated or refused with a reason.
    Mutation: delete "--compressed" from vm_virsh.FLAGS."""
    known = set(vm_virsh.FLAGS) | set(vm_virsh.VALUES) | set(vm_virsh.REFUSED)
    assert sorted(set(virsh_migrate_switches()) - known) == []


def test_virsh_switches_become_libvirt_flags_and_params():
    """The names must be libvirt-python's own.  Mutation: "--auto-converge": "AUTOCONVERGE"
    or "--listen-address": ("listen-address", ...)."""
    import libvirt

    present = set(virsh_migrate_switches())
    names = {getattr(libvirt, n) for n in dir(libvirt) if n.startswith("VIR_MIGRATE_PARAM_")}
    for switch, flag in vm_virsh.FLAGS.items():
        if flag and switch in present:
            assert isinstance(getattr(libvirt, "VIR_MIGRATE_" + flag, None), int), switch
    for switch, (name, _kind) in vm_virsh.VALUES.items():
        if switch in present:
            assert name in names, switch


def test_migrate_options_parse_like_virsh():
    """Mutation: the `--opt value` form not taken (only --opt=value)."""
    opts = vm_virsh.parse("--compressed --auto-converge --bandwidth 50 "
                          "--migrate-disks=vda,vdb --migrateuri=tcp://%n-mig:49300 --verbose")
    assert opts.flags == ("COMPRESSED", "AUTO_CONVERGE")
    assert opts.params == {"bandwidth": 50, "migrate_disks": ["vda", "vdb"],
                           "migrate_uri": "tcp://%n-mig:49300"}
    assert opts.migrateuri == "tcp://%n-mig:49300"
    assert not vm_virsh.parse("  ")


@pytest.mark.parametrize("text,why", [
    ("--dname other", "--dname"), ("--timeout 30", "--timeout"), ("--bandwidth", "without"),
    ("--bandwidth fast", "whole number"), ("--frobnicate", "'--frobnicate'"),
    ("vm1", "'vm1'"), ("--xml=/tmp/x.xml", "--xml"), ("--offline", "--offline")])
def test_migrate_options_refused_with_the_reason(text, why):
    """Mutation: parse() skipping unknown words (VirtualMachine before issue 14 ignored
    migrate_options entirely: validate-all rc 0)."""
    rc, err = run(VirtualMachine, "validate-all", name="vm", migrate_options=text)
    assert rc == 6, err
    assert "parameter migrate_options=" in err and why in err, err


def test_migration_plan_carries_migrate_options():
    """Mutation: Plan.params not merging `extra` (the switches' params dropped)."""
    import libvirt

    opts = vm_virsh.parse("--p2p --compressed --listen-address 10.0.0.2 --bandwidth 40 "
                          "--migrateuri=tcp://%n:49300")
    plan = vm_migrate.Plan(libvirt, "qemu+ssh://n2/system", None, False, False, True, 10, 0,
                           ["auto_converge"] + list(opts.flags), opts.params)
    assert plan.flags == (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PERSIST_DEST
                          | libvirt.VIR_MIGRATE_AUTO_CONVERGE | libvirt.VIR_MIGRATE_PEER2PEER
                          | libvirt.VIR_MIGRATE_COMPRESSED)
    assert plan.params == {libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: 40,
                           libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS: "10.0.0.2"}
    uri = vm_migrate.migration_uri("n2", "", "" or opts.migrateuri, None, "qemu")
    assert uri == "tcp://n2:49300"


def test_migration_network_suffix_sends_qemu_data_over_that_network():
    """VirtualDomain's mk_migrateuri: qemu's and Xen's data to <node><suffix>.  Mutation: drop the
    suffix branch of migration_uri (libvirt would pick the target's own host name)."""
    assert vm_migrate.migration_uri("node2.example.com", "-mig") == "tcp://node2-mig.example.com"
    assert vm_migrate.migration_uri("node2", "-mig", port=49152) == "tcp://node2-mig:49152"
    assert vm_migrate.migration_uri("node2", "", "") is None
    # Xen: VirtualDomain gives the bare "node2-mig", which libxl completes to tcp://node2-mig
    assert vm_migrate.migration_uri("node2", "-mig", driver="xen") == "tcp://node2-mig"
