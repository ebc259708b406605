"""OCF 1.1 reload: declarations checked at class definition, `reloadable` in meta-data,
reload-agent dispatched; Filesystem's reload-agent against a real ext4 mount.

Pacemaker's own view (reload-agent instead of stop + start, dependents untouched) is
proven in test_ocf_reload_pacemaker.py.
"""

import importlib
import io
import os

import pytest
from lxml import etree

from hasf import ocf
from hasf.ocf.declaration import DeclarationError
from hasf.ocf.metadata import build
from testagents.hasf_test_agent import HasfTest
from test_vm_common import agent_path, domains, system_libvirtd  # noqa: F401 (fixtures)

#: what each installed agent takes live (None: no reload-agent at all)
EXPECTED_RELOADABLE = {
    "OCFS2Membership": {"nodes"},
    "Filesystem": {"statusfile_prefix", "fast_stop", "force_unmount", "run_fsck"},
    "VirtualMachine": {"monitor_scripts", "guest_agent_check", "force_stop", "shutdown_mode",
                       "shutdown_timeout_share", "save_config_on_stop", "stop_without_libvirtd",
                       "migration_transport", "migration_user", "migration_network_suffix",
                       "remoteuri", "migrateuri", "migrateport", "migration_peer2peer",
                       "migration_tunnelled", "migration_options", "migration_speed",
                       "migration_downtime", "migrate_options", "autoset_utilization_cpu",
                       "autoset_utilization_hv_memory", "autoset_utilization_host_memory",
                       "unset_utilization_cpu", "unset_utilization_hv_memory",
                       "unset_utilization_host_memory"},
    "iscsi": {"try_recovery", "udev", "iscsiadm", "username", "password", "password_file",
              "username_in", "password_in", "password_in_file"},
    "iSCSITarget": None, "iSCSILogicalUnit": None,
}


def _agent_classes():
    from hasf.cib.agents import source_manifest

    found = []
    for kind, name, module, _function in source_manifest():
        if kind == "ocf":
            mod = importlib.import_module(module)
            found.append((name, next(v for v in vars(mod).values() if isinstance(v, type)
                                     and issubclass(v, ocf.ResourceAgent) and v.name == name)))
    return found


def _base(**extra):
    """A minimal well-formed agent class body."""
    body = {"name": "T", "actions": (ocf.Action("start", 20), ocf.Action("stop", 20),
                                     ocf.Action("monitor", 20, interval=10)),
            "parameters": (ocf.Parameter("a", shortdesc="a"),),
            "start": lambda self: None, "stop": lambda self: None,
            "monitor": lambda self: ocf.SUCCESS}
    body.update(extra)
    return body


def _define(**extra):
    return type("T", (ocf.ResourceAgent,), _base(**extra))


# --- the declaration check ------------------------------------------------------------
def test_a_well_formed_agent_is_accepted():
    assert _define().name == "T"


def test_declared_action_without_handler_fails_at_class_definition():
    """Mutation: drop the handler check in declaration._unknown_or_missing -> no error."""
    actions = _base()["actions"] + (ocf.Action("migrate_to", 20),)
    with pytest.raises(TypeError) as caught:
        _define(actions=actions)
    assert isinstance(caught.value, DeclarationError)
    assert "declares action 'migrate_to' but has no migrate_to() handler" in str(caught.value)


def test_handler_without_declared_action_fails_at_class_definition():
    """Mutation: make _undeclared_handlers return [] -> no error."""
    with pytest.raises(DeclarationError, match=r"has a notify\(\) handler but does not declare "
                                               r"action 'notify'"):
        _define(notify=lambda self: None)
    # status is served by monitor: declaring it is enough, and it needs no handler of its own
    _define(actions=_base()["actions"] + (ocf.Action("status", 20),))


def test_unknown_and_missing_mandatory_actions_are_refused():
    with pytest.raises(DeclarationError, match="'reload_agent', which is not an OCF action"):
        _define(actions=_base()["actions"] + (ocf.Action("reload_agent", 20),))
    with pytest.raises(DeclarationError, match="does not declare the mandatory action 'stop'"):
        _define(actions=(ocf.Action("start", 20), ocf.Action("monitor", 20)))


def test_reloadable_and_reload_agent_go_together():
    """Mutation: drop the first check in _reload_problems -> a reloadable parameter without
    reload-agent is accepted (and Pacemaker would restart on every change)."""
    live = (ocf.Parameter("a", shortdesc="a", reloadable=True),)
    with pytest.raises(DeclarationError, match="marks a reloadable but does not declare "
                                               "action 'reload-agent'"):
        _define(parameters=live)
    with pytest.raises(DeclarationError, match="marks a reloadable"):
        _define(reloadable=("a",))
    with pytest.raises(DeclarationError, match="declares action 'reload-agent' but marks no "
                                               "parameter reloadable"):
        _define(actions=_base()["actions"] + (ocf.Action("reload-agent", 20),),
                reload_agent=lambda self: None)
    with pytest.raises(DeclarationError, match="lists 'b' as reloadable, which is not one"):
        _define(actions=_base()["actions"] + (ocf.Action("reload-agent", 20),),
                reload_agent=lambda self: None, reloadable=("a", "b"))
    _define(actions=_base()["actions"] + (ocf.Action("reload-agent", 20),),
            reload_agent=lambda self: None, reloadable=("a",))


def test_legacy_reload_only_when_every_unique0_parameter_is_reloadable():
    """Pacemaker before OCF 1.1 calls `reload` for a change of any unique=0 parameter.
    Mutation: drop the 'reload' branch of _reload_problems -> the first case is accepted."""
    params = (ocf.Parameter("a", shortdesc="a", reloadable=True),
              ocf.Parameter("b", shortdesc="b"),
              ocf.Parameter("key", shortdesc="k", unique=True))
    both = _base()["actions"] + (ocf.Action("reload", 20), ocf.Action("reload-agent", 20))
    handlers = {"reload": lambda self: None, "reload_agent": lambda self: None}
    with pytest.raises(DeclarationError, match="legacy action 'reload'.*but b cannot change "
                                               "live"):
        _define(parameters=params, actions=both, **handlers)
    # b reloadable too: every unique=0 parameter applies live, `reload` is true
    _define(parameters=params, actions=both, reloadable=("b",), **handlers)


def test_bases_and_mixins_without_a_name_are_not_checked():
    class Partial(ocf.ResourceAgent):
        def stop(self):
            return None
    assert Partial.name == ""


@pytest.mark.parametrize("name,cls", _agent_classes(), ids=[n for n, _ in _agent_classes()])
def test_every_installed_agent_declares_reload_as_it_implements_it(name, cls):
    """meta-data marks exactly the parameters reload-agent applies; reload-agent advertised
    exactly where something is reloadable; no hasf agent advertises the legacy reload.
    Mutation: emit no reloadable attribute in metadata._parameter -> fails."""
    root = etree.fromstring(build(cls).encode())
    marked = {p.get("name") for p in root.iter("parameter") if p.get("reloadable") == "1"}
    actions = {a.get("name") for a in root.iter("action")}
    expected = EXPECTED_RELOADABLE[name]
    assert marked == (expected or set())
    assert ("reload-agent" in actions) == (expected is not None)
    assert "reload" not in actions
    assert all(p.get("reloadable") in (None, "1") for p in root.iter("parameter"))


# --- dispatch ---------------------------------------------------------------------------
def _call(action, env):
    out, err = io.StringIO(), io.StringIO()
    return ocf.run(HasfTest, ["agent", action], env, out, err), err.getvalue()


def test_reload_agent_applies_the_reloadable_parameter(ocf_env, tmp_path):
    """Mutation: make HasfTest.reload_agent a no-op -> the depth-10 monitor fails."""
    ocf_env["OCF_RESKEY_state"] = str(tmp_path / "state")
    assert _call("start", ocf_env)[0] == 0
    ocf_env["OCF_RESKEY_fake"] = "changed"
    deep = dict(ocf_env, OCF_CHECK_LEVEL="10")
    assert _call("monitor", deep)[0] == 1  # the running instance still holds the old value
    rc, err = _call("reload-agent", ocf_env)
    assert rc == 0 and "reload-agent: fake=changed" in err
    assert _call("monitor", deep)[0] == 0
    assert (tmp_path / "state").read_text() == "changed"
    # the legacy action is not advertised, so it is not run
    assert _call("reload", ocf_env)[0] == ocf.OCFExit.ERR_UNIMPLEMENTED


def test_reload_agent_validates_first(ocf_env, tmp_path):
    ocf_env["OCF_RESKEY_state"] = str(tmp_path / "missing" / "state")
    rc, err = _call("reload-agent", ocf_env)
    assert rc == ocf.OCFExit.ERR_CONFIGURED and "does not exist" in err


# --- Filesystem: reload-agent against a real mount ----------------------------------------
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (loop devices, mount)")
def test_filesystem_reload_keeps_the_mount_and_fails_when_it_is_gone(hasf_agent, workdir):
    """A reload with new check/stop parameters leaves the very same mount (mount id) in
    place, and a reload of a filesystem that is not mounted fails instead of hiding it.
    Mutation: return None at the top of Filesystem.reload_agent -> the last reload passes."""
    import subprocess

    from lab.ocfrun import AgentRun
    from test_filesystem import LoopDisk
    from hasf.kernel import mountinfo

    agent = hasf_agent("Filesystem", "hasf.agents.filesystem")
    disk = LoopDisk(workdir)
    mnt = os.path.join(workdir, "mnt")
    run = AgentRun(agent, os.path.join(workdir, "rsc"), "store", "Filesystem",
                   device=disk.device, directory=mnt, fstype="ext4")

    def mount_ids():
        return [m.mount_id for m in mountinfo.at(mnt, mountinfo.table())]
    try:
        assert run("start").rc == 0
        before = mount_ids()
        assert len(before) == 1
        changed = {"statusfile_prefix": ".hasf-check/", "fast_stop": "false",
                   "force_unmount": "safe", "run_fsck": "no"}
        reloaded = run("reload-agent", **changed)
        assert reloaded.rc == 0, reloaded
        assert "statusfile_prefix=.hasf-check/" in reloaded.stderr
        assert mount_ids() == before
        deep = run("monitor", extra={"OCF_CHECK_LEVEL": "20"}, **changed)
        assert deep.rc == 0, deep
        assert os.listdir(os.path.join(mnt, ".hasf-check"))  # the new prefix is in use
        subprocess.run(["umount", mnt], check=True, timeout=30)
        gone = run("reload-agent", **changed)
        assert gone.rc == 1 and "not mounted" in gone.reason, gone
    finally:
        run("stop")
        disk.cleanup(mnt)


# --- VirtualMachine: reload-agent against a real qemu domain ------------------------------
@pytest.mark.libvirt
def test_virtual_machine_reload_keeps_the_domain_running(agent_path, system_libvirtd,  # noqa: F811
                                                         domains, tmp_path):  # noqa: F811
    """monitor_scripts and the stop/migration parameters change on a running domain: the
    same qemu process keeps running, the next depth-10 monitor runs the new script; a reload
    of a domain that is no longer running fails.  Mutation: `return None` at the top of
    VirtualMachine.reload_agent -> the last reload passes."""
    from test_vm_common import SYSTEM_URI, VmRun, virsh, write_config
    from hasf.agents.vm_procs import qemu_processes

    workdir = str(tmp_path)
    os.chmod(workdir, 0o755)
    name = domains.new("reload")
    run = VmRun(agent_path, os.path.join(workdir, "rsc"), config=write_config(workdir, name),
                hypervisor=SYSTEM_URI, shutdown_timeout_share=10)
    bad = os.path.join(workdir, "bad")
    with open(bad, "w") as handle:
        handle.write("#!/bin/sh\nexit 3\n")
    os.chmod(bad, 0o755)
    try:
        assert run("start").rc == 0
        pids = qemu_processes(name)
        assert len(pids) == 1
        changed = {"monitor_scripts": bad, "force_stop": "true", "migration_transport": "tcp"}
        reloaded = run("reload-agent", **changed)
        assert reloaded.rc == 0, reloaded
        assert qemu_processes(name) == pids
        deep = run("monitor", extra={"OCF_CHECK_LEVEL": "10"}, **changed)
        assert deep.rc == 1 and "exited 3" in deep.reason, deep
        assert virsh(SYSTEM_URI, "destroy", name).returncode == 0
        gone = run("reload-agent", **changed)
        assert gone.rc == 1 and "not running here" in gone.reason, gone
    finally:
        run("stop", force_stop="true")


# --- iscsi (initiator): reload-agent needs its session ----------------------------------------
def test_iscsi_reload_without_a_session_fails(hasf_agent, tmp_path):
    """This host has no iSCSI sessions (tests/test_iscsi_initiator.py): a reload is refused
    rather than reporting a session that is not there.  The reload of a logged-in session
    runs in a guest (lab/storage_path.py, tests/test_iscsi_guest.py).  Mutation: `return
    None` at the top of ISCSIInitiator.reload_agent -> rc 0."""
    from lab.ocfrun import AgentRun

    run = AgentRun(hasf_agent("iscsi", "hasf.agents.iscsi_initiator"), str(tmp_path / "rsc"),
                   "initiator", "iscsi", portal="127.0.0.1",
                   target="iqn.2026-12.org.hasf.test:san", iscsiadm="/bin/true")
    result = run("reload-agent", try_recovery="true")
    assert result.rc == 1 and "no logged-in session" in result.reason, result
