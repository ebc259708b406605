"""VirtualMachine: the agent's logic without a real hypervisor.

Config parsing, migration URIs, qemu command-line matching, parameter
validation (shell metacharacters and XML specials), meta-data, and the
libvirt boundary against libvirt's own test:/// driver (state only lives
inside one process: fine for the boundary, not for ocf-tester).
"""

import io
import os
import subprocess
import threading

import pytest

from hasf.agents import vm_config, vm_migrate, vm_procs
from hasf.agents.virtual_machine import VirtualMachine
from hasf.deadline import Deadline
from hasf.ocf import main as ocf_main
from hasf.ocf.errors import GenericError, NotConfigured, PermissionDenied

DTD_DIR = "/usr/share/resource-agents"
NASTY = "x'; touch /tmp/hasf-pwned; echo \"$(id)\" `id` & | < > \\ $HOME"


@pytest.fixture
def libvirtd():
    """A running libvirtd: "no driver for this URI scheme" is libvirtd's own answer (the
    client hands an unknown scheme to the daemon).  With no daemon the agent cannot tell,
    and says so (rc 1) -- these tests asserted the daemon's answer and passed only after
    another test module had started it."""
    from lab.libvirtd import ensure_system_libvirtd

    return ensure_system_libvirtd()


# --- config ---------------------------------------------------------------------------------
def test_identity_from_domain_xml():
    ident = vm_config.identity(
        b"<domain type='kvm'><name>vm1</name><uuid>0b1c</uuid>"
        b"<metadata><x><name>not me</name></x></metadata>"
        b"<devices><interface><source><name>nor me</name></source></interface></devices>"
        b"</domain>")
    assert (ident.name, ident.uuid, ident.domain_type) == ("vm1", "0b1c", "kvm")


def test_identity_keeps_xml_specials_literally():
    ident = vm_config.identity("<domain type='qemu'><name>a&amp;b&lt;c&gt;\"'$;`x</name>"
                               "</domain>")
    assert ident.name == "a&b<c>\"'$;`x"


@pytest.mark.parametrize("text, fragment", [
    (b"<domain><name>x</name>", "not well-formed"),
    (b"<vm><name>x</name></vm>", "not a libvirt domain"),
    (b"<domain><uuid>1</uuid></domain>", "no <name>"),
    (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
     b"<domain><name>&e;</name></domain>", "DOCTYPE"),
])
def test_identity_rejects_bad_config(text, fragment):
    with pytest.raises(NotConfigured) as err:
        vm_config.identity(text)
    assert fragment in err.value.message


def test_config_file_errors(tmp_path):
    with pytest.raises(vm_config.ConfigUnavailable):
        vm_config.load(str(tmp_path / "missing.xml"))
    path = tmp_path / "c.xml"
    path.write_text("<domain><name>n</name></domain>")
    assert vm_config.load(str(path))[1].name == "n"
    if os.getuid() == 0:
        return  # root reads anything; the permission path is for non-root runs
    path.chmod(0)
    with pytest.raises(PermissionDenied):
        vm_config.load(str(path))


# --- migration URIs ---------------------------------------------------------------------------
@pytest.mark.parametrize("local, kw, expected", [
    ("qemu:///system", {}, "qemu://node2/system"),
    ("qemu:///system", {"transport": "ssh"}, "qemu+ssh://node2/system"),
    ("qemu:///system", {"transport": "ssh", "user": "root"}, "qemu+ssh://root@node2/system"),
    ("xen:///system", {"transport": "tls", "suffix": "-mig"}, "xen+tls://node2-mig/system"),
    ("qemu+tcp://node1:16509/system", {}, "qemu://node2:16509/system"),
    ("qemu:///system", {"remoteuri": "qemu+ssh://%n.lan/system?keyfile=/k"},
     "qemu+ssh://node2.lan/system?keyfile=/k"),
])
def test_remote_uri(local, kw, expected):
    assert vm_migrate.remote_uri(local, "node2", **kw) == expected


def test_network_suffix_goes_after_first_label():
    assert vm_migrate.target_host("node2.example.com", "-mig") == "node2-mig.example.com"
    assert vm_migrate.migration_uri("n2.x", "-m", "tcp://%n:4000") == "tcp://n2-m.x:4000"
    assert vm_migrate.migration_uri("n2", port=49152) == "tcp://n2:49152"
    # libxl takes tcp:// only (VirtualDomain's xenmigr:// is the xend driver's scheme)
    assert vm_migrate.migration_uri("n2", port=49152, driver="xen") == "tcp://n2:49152"
    assert vm_migrate.migration_uri("n2") is None


def test_migration_plan_flags_and_params():
    import libvirt

    plan = vm_migrate.Plan(libvirt, "qemu+ssh://n2/system", "tcp://n2:1", peer2peer=False,
                           tunnelled=True, persistent=True, bandwidth=100, downtime=0)
    assert plan.flags & libvirt.VIR_MIGRATE_PEER2PEER  # tunnelled implies peer-to-peer
    assert plan.flags & libvirt.VIR_MIGRATE_TUNNELLED
    assert plan.flags & libvirt.VIR_MIGRATE_PERSIST_DEST
    assert plan.params == {libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: 100}
    direct = vm_migrate.Plan(libvirt, "d", "tcp://n2:1", False, False, False, 0, 0)
    assert direct.flags == libvirt.VIR_MIGRATE_LIVE
    assert direct.params == {libvirt.VIR_MIGRATE_PARAM_URI: "tcp://n2:1"}


# --- qemu processes ---------------------------------------------------------------------------
def test_qemu_command_line_matching():
    argv = ["/usr/bin/qemu-system-x86_64", "-name", "guest=a,,b,debug-threads=on", "-uuid",
            "9D98A0BC-19ef-4fe4-ac74-a0cda0159911"]
    assert vm_procs.matches(argv, "a,b")
    assert not vm_procs.matches(argv, "a")
    assert vm_procs.matches(argv, "zzz", "9d98a0bc-19ef-4fe4-ac74-a0cda0159911")
    assert vm_procs.matches(["qemu-kvm", "-name", "vm1"], "vm1")
    assert not vm_procs.matches(["/bin/sleep", "-name", "guest=a"], "a")


def test_no_process_for_an_unknown_domain_is_proof_of_absence():
    assert vm_procs.hypervisor_evidence("hasfvm-never-%d" % os.getpid(), None,
                                        Deadline(5)) is None


@pytest.mark.parametrize("files, dom0", [
    ({"/proc/xen/capabilities": "control_d"}, True),
    ({"/proc/xen/capabilities": "", "/sys/hypervisor/type": "xen"}, False),   # a domU
    ({"/sys/hypervisor/type": "xen", "/sys/hypervisor/guest_type": "PV"}, True),
    ({"/sys/hypervisor/type": "xen", "/sys/hypervisor/guest_type": "PVH"}, True),
    ({"/sys/hypervisor/type": "xen"}, True),           # a kernel without guest_type
    ({"/sys/hypervisor/type": "xen", "/sys/hypervisor/guest_type": "HVM"}, False),
    ({"/sys/hypervisor/type": "kvm"}, False),
    ({}, False),
])
def test_xen_dom0_is_recognised_without_xenfs(monkeypatch, files, dom0):
    """A dom0 without xenfs mounted is still a Xen dom0 (tests/test_xen_vm.py shows it on a
    real one).  Mutation: xen_control_domain reading only /proc/xen/capabilities -> the
    sysfs-only dom0 cases fail."""
    monkeypatch.setattr(vm_procs, "read_attr", files.get)
    assert vm_procs.xen_control_domain() is dom0


# --- parameters: validation and literal pass-through ----------------------------------------
def run_agent(action, params, tmp_path, interval="0"):
    env = {"OCF_RESOURCE_INSTANCE": "vm-logic", "HA_RSCTMP": str(tmp_path),
           "OCF_RESKEY_CRM_meta_interval": interval, "OCF_RESKEY_CRM_meta_timeout": "5000"}
    env.update(("OCF_RESKEY_" + k, v) for k, v in params.items())
    out, err = io.StringIO(), io.StringIO()
    rc = ocf_main.run(VirtualMachine, ["VirtualMachine", action], env, out, err)
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("param", ["hypervisor", "remoteuri", "migrateuri", "migration_transport",
                                   "migration_user", "migration_network_suffix",
                                   "shutdown_mode", "monitor_scripts", "config", "snapshot",
                                   "migration_options", "migrate_options", "name"])
def test_shell_metacharacters_fail_validation(param, tmp_path):
    rc, _out, err = run_agent("validate-all", {"name": "vm", param: NASTY}, tmp_path)
    assert rc == 6, err
    assert "parameter %s=" % param in err
    assert not os.path.exists("/tmp/hasf-pwned")


def test_every_problem_reported_at_once(tmp_path):
    rc, _out, err = run_agent("validate-all", {"hypervisor": "bad uri", "shutdown_mode": "acpi,x",
                                               "migrateport": "0"}, tmp_path)
    assert rc == 6
    for name in ("hypervisor", "shutdown_mode", "migrateport"):
        assert "parameter %s=" % name in err


def test_consistency_checks(tmp_path):
    cfg = tmp_path / "c.xml"
    cfg.write_text("<domain type='qemu'><name>real</name></domain>")
    rc, _o, err = run_agent("validate-all", {"config": str(cfg), "name": "other",
                                             "migration_tunnelled": "true",
                                             "migrateuri": "tcp://%n:1"}, tmp_path)
    assert rc == 6
    assert "does not match the domain name real" in err
    assert "tunnelled" in err
    rc, _o, err = run_agent("validate-all", {}, tmp_path)
    assert rc == 6 and "set config" in err


def test_missing_config_is_not_installed_on_validate_and_not_running_on_probe(tmp_path):
    params = {"config": str(tmp_path / "gone.xml"), "hypervisor": "test:///default"}
    rc, _o, err = run_agent("validate-all", params, tmp_path)
    assert rc == 5, err
    assert "does not exist" in err
    rc, _o, err = run_agent("monitor", params, tmp_path)  # probe, nothing remembered
    assert rc == 7, err
    rc, _o, err = run_agent("stop", params, tmp_path)
    assert rc == 0, err


def test_neither_config_nor_name_is_a_clear_answer_not_a_traceback(tmp_path):
    """validate-all says what to set (rc 6); a probe and a stop with nothing that names a
    domain (and no record of one) answer cleanly.  Mutation: drop the "if not
    self.params.config: return None" in VirtualMachine.identity -- monitor and stop end in
    "reading config file None failed: TypeError", rc 1."""
    params = {"hypervisor": "test:///default"}
    rc, _o, err = run_agent("validate-all", params, tmp_path)
    assert rc == 6 and "set config" in err, err
    rc, _o, err = run_agent("monitor", params, tmp_path)
    assert rc == 7 and "neither config nor name" in err and "TypeError" not in err, err
    rc, _o, err = run_agent("stop", params, tmp_path)
    assert rc == 0 and "TypeError" not in err, err


def test_xml_specials_pass_through_to_libvirt_literally(tmp_path):
    """A name full of specials reaches libvirt as exactly that name (test:/// driver)."""
    name = "<&\"'>$(id);`x`|"
    rc, _o, err = run_agent("monitor", {"name": name, "hypervisor": "test:///default"},
                            tmp_path)
    assert rc == 7, err  # no such domain: looked up literally, not an error
    assert not os.path.exists("/tmp/hasf-pwned")


def test_metadata_valid_dtd_and_rng(tmp_path):
    rc, text, _err = run_agent("meta-data", {}, tmp_path)
    assert rc == 0
    # as ocf-tester checks it (its DOCTYPE, extended for OCF 1.1), and pcs's OCF 1.1 schema
    for args in (["--valid"], ["--relaxng", "/usr/share/pcs/data/ocf-1.1.rng"]):
        proc = subprocess.run(["xmllint", "--noout"] + args + ["-"], input=text, cwd=DTD_DIR,
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
    for needed in ('name="start" timeout="90s"', 'name="stop" timeout="90s"',
                   'name="migrate_to" timeout="120s"',
                   'name="monitor" timeout="30s" interval="10s"', 'name="shutdown_mode"',
                   'name="migrateuri"', 'name="snapshot"'):
        assert needed in text


def test_metadata_does_not_import_libvirt_or_lxml():
    code = ("import sys; from hasf.ocf import main; from hasf.agents.virtual_machine import "
            "VirtualMachine as V; import io; main.run(V, ['x', 'meta-data'], {}, io.StringIO());"
            "print(sorted(m for m in ('libvirt', 'lxml', 'psutil', 'lxml.etree') "
            "if m in sys.modules))")
    out = subprocess.run([__import__("sys").executable, "-c", code], capture_output=True,
                         text=True, timeout=30)
    assert out.stdout.strip() == "[]", out.stderr


# --- the libvirt boundary (test:/// driver) -----------------------------------------------------
def test_hypervisor_state_and_lookup_with_test_driver():
    from hasf.agents.vm_libvirt import RUNNING, Hypervisor

    hv = Hypervisor("test:///default", Deadline(10)).connect()
    dom = hv.lookup("test")
    assert dom is not None and hv.state(dom)[0] == RUNNING
    assert hv.lookup("no-such-domain") is None
    hv.call(dom.destroy, what="destroy")
    assert not hv.is_active(dom)
    hv.close()


def test_wait_state_sees_a_vanished_transient_domain_as_reached():
    """A transient domain that shut down is gone (state None): the wait for "inactive" is
    over, not expired (found on Xen: a PV domU powered off in 2 s, and stop destroyed it
    "after 40 s").  Mutation: wait_state returning the last state again (None) -> False."""
    from hasf.agents.vm_libvirt import INACTIVE_STATES, Hypervisor

    hv = Hypervisor("test:///default", Deadline(10)).connect()
    hv.call(hv.conn.createXML, "<domain type='test'><name>hasf-transient</name>"
            "<memory>8192</memory><os><type>hvm</type></os></domain>", 0, what="create")
    dom = hv.lookup("hasf-transient")
    hv.call(dom.destroy, what="destroy")        # transient: now undefined as well
    assert hv.state(dom) == (None, None)
    assert hv.wait_state(dom, lambda s: s is None or s in INACTIVE_STATES, Deadline(2)) is True
    assert hv.wait_state(dom, lambda s: s is not None, Deadline(0.5)) is False
    hv.close()


def test_driver_errors_are_translated_not_swallowed():
    from hasf.agents.vm_libvirt import Hypervisor

    hv = Hypervisor("test:///default", Deadline(10)).connect()
    with pytest.raises(NotConfigured):
        hv.call(hv.conn.createXML, "<domain type='test'><name>x</name>", 0, what="create")
    with pytest.raises(GenericError) as err:
        hv.call(hv.conn.lookupByName, "no-such", what="lookup")
    assert err.value.message.startswith("lookup: Domain not found")


def test_unknown_uri_scheme_is_not_installed(libvirtd):
    from hasf.agents.vm_libvirt import Hypervisor
    from hasf.ocf.errors import NotInstalled

    with pytest.raises(NotInstalled):
        Hypervisor("nosuchdriver:///system", Deadline(5)).connect()


def test_bounded_call_gives_up_on_a_hung_call():
    from hasf.agents.vm_libvirt import CallTimeout, call_bounded

    gate = threading.Event()
    with pytest.raises(CallTimeout):
        call_bounded(gate.wait, (30,), 0.2, "hung call")
    gate.set()


def test_hung_libvirtd_socket_connect_is_bounded(tmp_path):
    """A socket that accepts but never answers (a hung libvirtd) costs only the bound."""
    import socket
    import time

    from hasf.agents.vm_libvirt import Hypervisor, Unreachable

    path = str(tmp_path / "sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(5)
    try:
        start = time.monotonic()
        with pytest.raises(Unreachable):
            Hypervisor("qemu+unix:///system?socket=" + path, Deadline(1.5)).connect()
        assert time.monotonic() - start < 3
    finally:
        server.close()


def test_hardcoded_libvirt_numbers_match_libvirt():
    import libvirt

    from hasf.agents import vm_libvirt

    for name, value in vm_libvirt.ERR.items():
        assert getattr(libvirt, "VIR_ERR_" + name) == value, name
    for name, value in vm_libvirt.TRANSIENT_PAUSE_REASONS.items():
        assert getattr(libvirt, "VIR_DOMAIN_PAUSED_" + name) == value, name
    for value, name in vm_libvirt.STATE_NAMES.items():
        key = {"no state": "NOSTATE", "in shutdown": "SHUTDOWN", "shut off": "SHUTOFF"}.get(
            name, name.upper())
        assert getattr(libvirt, "VIR_DOMAIN_" + key) == value, name
    assert libvirt.VIR_FROM_RPC == vm_libvirt.FROM_RPC


def test_lean_hypervisor_matches_the_full_one():
    from hasf.agents.vm_libvirt import RUNNING, SHUTOFF, Hypervisor, LeanHypervisor

    lean = LeanHypervisor("test:///default", Deadline(10)).connect()
    full = Hypervisor("test:///default", Deadline(10)).connect()
    if not full.is_active(full.lookup("test")):  # test:///default is shared in-process
        full.call(full.lookup("test").create, what="create")
    dom = lean.lookup("test")
    assert lean.state(dom) == full.state(full.lookup("test"))
    assert lean.state(dom)[0] == RUNNING and lean.is_active_now(dom)
    assert lean.lookup("no-such-domain") is None
    full.call(full.lookup("test").destroy, what="destroy")
    assert lean.state(dom)[0] == SHUTOFF and not lean.is_active_now(dom)
    lean.close()
    full.close()


def test_lean_hypervisor_errors_are_translated(libvirtd):
    from hasf.agents.vm_libvirt import LeanHypervisor, Unreachable
    from hasf.ocf.errors import NotInstalled

    with pytest.raises(NotInstalled):
        LeanHypervisor("nosuchdriver:///system", Deadline(5)).connect()
    with pytest.raises(Unreachable) as err:
        LeanHypervisor("qemu+unix:///system?socket=/nonexistent/sock", Deadline(5)).connect(
            retry=False)
    assert "/nonexistent/sock" in err.value.message


def test_monitor_path_imports_no_libvirt_py_lxml_or_re(tmp_path):
    """A depth-0 monitor loads libvirt's C extension only (see LeanHypervisor).

    Run like an installed agent (-I -S, no site, no editable-install finder):
    hasf from the checkout, hasf.agents through a symlink, libvirtmod from
    where this interpreter finds it (a venv's site-packages, or a distribution's
    python3-libvirt outside purelib/platlib, as in the RPM's %check).
    """
    import importlib.util
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.symlink(os.path.join(repo, "agents"), str(tmp_path / "agents"))
    code = ("import sys; sys.path[:0] = [%r, %r]; import hasf; hasf.__path__.append(%r); "
            "import io; from hasf.ocf import main; "
            "from hasf.agents.virtual_machine import VirtualMachine as V; "
            "before = set(sys.modules); "
            "env = {'OCF_RESKEY_name': 'nope', 'OCF_RESKEY_hypervisor': 'test:///default', "
            "'OCF_RESKEY_CRM_meta_interval': '10000', 'HA_RSCTMP': %r}; "
            "rc = main.run(V, ['x', 'monitor'], env, io.StringIO(), io.StringIO()); "
            "print(int(rc), sorted(m for m in ('libvirt', 'lxml', 're', 'typing', 'threading', "
            "'subprocess', 'psutil', 'libvirtmod', 'json') if m in set(sys.modules) - before))"
            % (repo, os.path.dirname(importlib.util.find_spec("libvirtmod").origin),
               str(tmp_path), str(tmp_path)))
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                         text=True, timeout=30)
    assert out.stdout.strip() == "7 ['libvirtmod']", out.stderr


def test_probe_and_stop_without_a_libvirt_driver_prove_absence(tmp_path, libvirtd):
    """No driver for the URI on this node (like a node without Xen): probe 7, stop 0."""
    params = {"name": "hasfvm-nodriver", "hypervisor": "nosuchdriver:///system"}
    rc, _o, err = run_agent("monitor", params, tmp_path)
    assert rc == 7, err
    rc, _o, err = run_agent("stop", params, tmp_path)
    assert rc == 0, err
    rc, _o, err = run_agent("monitor", params, tmp_path, interval="10000")
    assert rc == 5, err  # a recurring monitor: the software is missing here
    rc, _o, err = run_agent("validate-all", params, tmp_path)
    assert rc == 5 and "no connection driver" in err, err


@pytest.mark.parametrize("param", ["config", "snapshot"])
def test_paths_with_specials_pass_through_literally(param, tmp_path):
    """An absolute path full of specials is just a path: it is looked up literally."""
    path = "/tmp/hasf-nonexistent-" + NASTY.replace("/", "_") + "<x>&amp;"
    params = {"name": "vm", param: path, "hypervisor": "test:///default"}
    rc, _out, err = run_agent("validate-all", params, tmp_path)
    assert rc == 5, err  # not installed here: the file/directory is not there
    assert path in err
    assert not os.path.exists("/tmp/hasf-pwned")


def test_uri_sub_delimiters_pass_through_literally():
    """$ & ' ; are legal in URIs (RFC 3986): kept verbatim, nothing interprets them."""
    from hasf.ocf.params import parse_params

    uri = "qemu+ssh://root@%n/system?keyfile=/k$x;y&no_verify=1&name='a'"
    params, problems = parse_params(VirtualMachine.parameters, {"OCF_RESKEY_remoteuri": uri})
    assert problems == [] and params.remoteuri == uri
    assert vm_migrate.remote_uri("qemu:///system", "n2", remoteuri=uri) == uri.replace("%n", "n2")


def test_migration_options_map_to_libvirt_flags():
    import libvirt

    from hasf.agents.virtual_machine import _MIGRATION_OPTIONS

    assert set(_MIGRATION_OPTIONS) == set(vm_migrate.OPTIONS)
    for word in vm_migrate.OPTIONS:
        assert isinstance(getattr(libvirt, "VIR_MIGRATE_" + word.upper()), int), word
    plan = vm_migrate.Plan(libvirt, "d", None, False, False, False, 0, 0,
                           ["auto_converge", "compressed"])
    assert plan.flags == (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_AUTO_CONVERGE
                          | libvirt.VIR_MIGRATE_COMPRESSED)
    assert "(auto_converge, compressed)" in plan.describe()


def test_unknown_migration_option_is_err_configured(tmp_path):
    rc, _o, err = run_agent("validate-all", {"name": "vm", "migration_options":
                                             "compressed,--live; reboot"}, tmp_path)
    assert rc == 6 and "parameter migration_options=" in err
