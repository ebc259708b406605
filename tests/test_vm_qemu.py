"""VirtualMachine against the real qemu:///system libvirtd with diskless qemu (TCG) domains.

A diskless 64 MiB domain starts in ~0.4 s and sits in the BIOS; it has no
ACPI, so every graceful stop here ends in the destroy fallback.
"""

import os
import subprocess
import threading
import time
from xml.sax.saxutils import escape

import pytest

from test_vm_common import (SYSTEM_URI, VmRun, agent_path, domains, domstate,  # noqa: F401
                            system_libvirtd, virsh, workdir, write_config)


@pytest.fixture
def vm(agent_path, system_libvirtd, domains, workdir):  # noqa: F811
    """A VmRun for a fresh transient domain on qemu:///system (cleaned up afterwards)."""
    name = domains.new("q")
    config = write_config(workdir, name)
    rsctmp = os.path.join(workdir, "rsc")
    run = VmRun(agent_path, rsctmp, config=config, hypervisor=SYSTEM_URI,
                shutdown_timeout_share=10)
    run.name, run.config, run.workdir = name, config, workdir
    return run


def test_ocf_tester_passes(agent_path, system_libvirtd, domains, workdir):  # noqa: F811
    name = domains.new("ocft")
    config = write_config(workdir, name)
    os.chmod(config, 0o644)
    proc = subprocess.run(
        ["ocf-tester", "-v", "-n", "ocft-" + name, "-o", "config=%s" % config,
         "-o", "hypervisor=%s" % SYSTEM_URI, "-o", "shutdown_timeout_share=10", agent_path],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, HA_RSCTMP=os.path.join(workdir, "rsc")))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "passed all tests" in proc.stdout
    assert "Checking for migrate_to action" in proc.stdout
    assert domstate(SYSTEM_URI, name) is None  # transient: gone after the final stop


def test_lifecycle_and_destroy_fallback(vm):
    assert vm("monitor").rc == 7
    assert vm.probe().rc == 7
    started = vm("start")
    assert started.rc == 0, started
    assert domstate(SYSTEM_URI, vm.name) == "running"
    assert vm("start").rc == 0  # already running
    assert vm("monitor").rc == 0
    assert vm.probe().rc == 0
    stopped = vm("stop")
    assert stopped.rc == 0, stopped
    assert "destroying it" in stopped.stderr  # the BIOS ignores ACPI: destroy fallback
    assert domstate(SYSTEM_URI, vm.name) is None
    assert vm("stop").rc == 0
    assert vm("monitor").rc == 7


def test_config_removed_after_start(vm):
    assert vm("start").rc == 0
    os.unlink(vm.config)
    probe = vm.probe()
    assert probe.rc == 0, probe  # remembered: still running, not a false "stopped"
    assert vm("monitor").rc == 0
    stopped = vm("stop")
    assert stopped.rc == 0, stopped
    assert domstate(SYSTEM_URI, vm.name) is None
    assert vm.probe().rc == 7
    assert vm("stop").rc == 0


def test_destroyed_behind_the_agents_back(vm):
    assert vm("start").rc == 0
    assert virsh(SYSTEM_URI, "destroy", vm.name).returncode == 0
    result = vm("monitor")
    assert result.rc == 7, result


def test_paused_domain_is_degraded_not_stopped(vm):
    assert vm("start").rc == 0
    assert virsh(SYSTEM_URI, "suspend", vm.name).returncode == 0
    result = vm("monitor")
    assert result.rc == 190, result
    stopped = vm("stop", shutdown_timeout_share=90)
    assert stopped.rc == 0, stopped
    assert stopped.seconds < 8  # a paused guest cannot shut down: no graceful wait
    assert domstate(SYSTEM_URI, vm.name) is None


def test_shutdown_mode_reaches_libvirt(vm):
    """mode=agent: libvirt itself refuses (no guest agent) -- proof the flag got there."""
    assert vm("start").rc == 0
    start = time.monotonic()
    stopped = vm("stop", shutdown_mode="agent", shutdown_timeout_share=90)
    assert stopped.rc == 0, stopped
    assert "flags=2" in stopped.stderr
    assert "guest agent" in stopped.stderr.lower()
    assert time.monotonic() - start < 10  # no pointless wait: went straight to destroy
    assert domstate(SYSTEM_URI, vm.name) is None


def test_force_stop_destroys_at_once(vm):
    assert vm("start").rc == 0
    stopped = vm("stop", force_stop="true")
    assert stopped.rc == 0, stopped
    assert "shutting down" not in stopped.stderr
    assert domstate(SYSTEM_URI, vm.name) is None


def test_persistent_domain(vm):
    assert vm("start", persistent="true").rc == 0
    assert virsh(SYSTEM_URI, "dominfo", vm.name).stdout.count("Persistent:     yes") == 1
    assert "Autostart:      disable" in virsh(SYSTEM_URI, "dominfo", vm.name).stdout
    assert vm("monitor", persistent="true").rc == 0
    assert vm("stop", persistent="true").rc == 0
    assert domstate(SYSTEM_URI, vm.name) == "shut off"  # still defined, not running
    assert vm("monitor", persistent="true").rc == 7
    # the defined domain, by name only (no config)
    by_name = VmRun(vm.agent, vm.rsctmp, instance="byname", name=vm.name,
                    hypervisor=SYSTEM_URI, force_stop="true")
    assert by_name("validate-all").rc == 0
    assert by_name("monitor").rc == 7
    assert by_name("start").rc == 0
    assert by_name("monitor").rc == 0
    assert by_name("stop").rc == 0
    assert domstate(SYSTEM_URI, vm.name) == "shut off"
    missing = by_name("validate-all", name=vm.name + "-undefined")
    assert missing.rc == 5 and "not defined" in missing.reason


def test_snapshot_save_on_stop_restore_on_start(vm):
    snapdir = os.path.join(vm.workdir, "snap")
    os.mkdir(snapdir)
    assert vm("start", snapshot=snapdir).rc == 0
    stopped = vm("stop", snapshot=snapdir, timeout=60000)
    assert stopped.rc == 0, stopped
    saved = os.path.join(snapdir, vm.name + ".state")
    assert os.path.exists(saved)
    assert domstate(SYSTEM_URI, vm.name) is None
    started = vm("start", snapshot=snapdir, timeout=60000)
    assert started.rc == 0, started
    assert "restoring" in started.stderr
    assert not os.path.exists(saved)
    assert domstate(SYSTEM_URI, vm.name) == "running"
    assert vm("stop", force_stop="true").rc == 0


def _script(path, body):
    with open(path, "w") as handle:
        handle.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
    return path


def test_monitor_scripts_on_every_monitor_and_depth_10_guest_agent(vm):
    """VirtualDomain runs monitor_scripts on every monitor (issue 14).  Mutation: run them
    only when check_level >= 10 again (the depth-0 monitor with bad.sh then passes)."""
    ok = _script(os.path.join(vm.workdir, "ok.sh"),
                 'echo "checked $HASF_DOMAIN_NAME $OCF_RESOURCE_INSTANCE"\nexit 0\n')
    bad = _script(os.path.join(vm.workdir, "bad.sh"), "exit 3\n")
    assert vm("start").rc == 0
    deep = {"OCF_CHECK_LEVEL": "10"}
    assert vm("monitor", monitor_scripts=ok).rc == 0
    failed = vm("monitor", monitor_scripts=bad)
    assert failed.rc == 1 and "bad.sh exited 3" in failed.reason, failed
    failed = vm("monitor", extra=deep, monitor_scripts="%s %s" % (ok, bad))
    assert failed.rc == 1 and "bad.sh exited 3" in failed.reason
    agent = vm("monitor", extra=deep, guest_agent_check="true")
    assert agent.rc == 1 and "guest agent" in agent.reason.lower(), agent
    assert vm("monitor", guest_agent_check="true").rc == 0  # the ping is depth 10 only
    assert vm("stop", force_stop="true").rc == 0


def test_start_waits_for_monitor_scripts(vm):
    """Start ends only once the monitor scripts pass, within its timeout (VirtualDomain
    loops on its monitor).  Mutation: drop _wait_for_monitor_scripts from start."""
    flag = os.path.join(vm.workdir, "ready")
    waits = _script(os.path.join(vm.workdir, "waits.sh"), 'test -e "%s"\n' % flag)
    timer = threading.Timer(2.5, lambda: open(flag, "w").close())
    timer.start()
    try:
        started = vm("start", monitor_scripts=waits, timeout=30000)
    finally:
        timer.cancel()
    assert started.rc == 0, started
    assert started.seconds >= 2.0, started.seconds
    assert domstate(SYSTEM_URI, vm.name) == "running"
    assert vm("stop", force_stop="true").rc == 0
    os.unlink(flag)
    never = vm("start", monitor_scripts=waits, timeout=6000)
    assert never.rc == 1, never
    assert "monitor scripts did not pass within the start timeout" in never.reason, never
    assert never.seconds < 8, never.seconds
    assert vm("stop", force_stop="true").rc == 0


def test_name_with_shell_and_xml_specials_is_used_literally(agent_path, system_libvirtd,  # noqa: F811
                                                            domains, workdir):  # noqa: F811
    name = domains.new("s") + "<&'\"$(id);`id`|,x>"
    from lab.libvirtd import diskless_domain_xml

    xml = diskless_domain_xml("NAME").replace("<name>NAME</name>",
                                              "<name>%s</name>" % escape(name))
    config = write_config(workdir, name, xml=xml)
    run = VmRun(agent_path, os.path.join(workdir, "rsc"), config=config,
                hypervisor=SYSTEM_URI, force_stop="true")
    assert run("validate-all").rc == 0
    started = run("start")
    assert started.rc == 0, started
    assert domstate(SYSTEM_URI, name) == "running"
    assert run("monitor").rc == 0
    from hasf.agents.vm_procs import qemu_processes

    assert len(qemu_processes(name)) == 1  # the ',' doubling of qemu's -name is understood
    assert run("stop").rc == 0
    assert domstate(SYSTEM_URI, name) is None


def test_bad_parameters_are_err_configured(vm):
    bad_uri = vm("validate-all", hypervisor="qemu:///nonexistent")
    assert bad_uri.rc == 6 and "nonexistent" in bad_uri.reason, bad_uri
    with open(vm.config) as handle:
        xml = handle.read()
    with open(vm.config, "w") as handle:
        handle.write(xml.replace("type='qemu'", "type='bogus'", 1))
    bad_type = vm("start")
    assert bad_type.rc == 6 and "bogus" in bad_type.reason, bad_type
    with open(vm.config, "w") as handle:
        handle.write("<domain><name>x</name>")
    assert vm("validate-all").rc == 6
    assert vm.probe().rc == 7  # a broken config on a probe: nothing remembered, not running
    assert vm("stop").rc == 0


def test_config_renamed_while_running_is_not_a_false_stopped(vm, domains):  # noqa: F811
    """The config now names another domain: the one this node started must not be forgotten.

    Monitor and stop decide from the record of what this node started (they do not read
    the config while there is one: the store may hang), so the running domain is still
    seen (0, the truth about what runs here) and stopped.  Mutation: identity() taking
    the name from the config before the record -- monitor looks at the new name and
    answers 1 (_check_renamed) or, without that check, a false 7 while the old one runs.
    """
    assert vm("start").rc == 0
    renamed = domains.new("r")
    from lab.libvirtd import diskless_domain_xml

    with open(vm.config, "w") as handle:
        handle.write(diskless_domain_xml(renamed))
    monitor = vm("monitor")
    assert monitor.rc == 0, monitor  # the domain this node started still runs
    assert vm.probe().rc == 0
    stopped = vm("stop", force_stop="true")
    assert stopped.rc == 0, stopped
    assert domstate(SYSTEM_URI, vm.name) is None
    assert vm("monitor").rc == 7


def test_save_config_on_stop(vm):
    """A change made to the running domain is written back to config before stop."""
    assert vm("start").rc == 0
    # a runtime change that persists into the migratable XML: the domain's title
    assert virsh(SYSTEM_URI, "desc", vm.name, "--live", "--title", "saved <&> title").returncode == 0
    stopped = vm("stop", save_config_on_stop="true", force_stop="true")
    assert stopped.rc == 0, stopped
    with open(vm.config) as handle:
        text = handle.read()
    assert "<title>saved &lt;&amp;&gt; title</title>" in text
    assert "<name>%s</name>" % vm.name in text
    assert not [f for f in os.listdir(os.path.dirname(vm.config)) if f.endswith(".tmp")]
    assert vm("start").rc == 0  # the saved config starts the domain again
    assert vm("stop", force_stop="true").rc == 0
