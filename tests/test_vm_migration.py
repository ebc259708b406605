"""VirtualMachine live migration between two real libvirtd instances on this machine.

Source: the host's qemu:///system.  Target: a lab.libvirtd.PrivateLibvirtd
(own network namespace, own socket and state) -- "node2".  migrate_to runs
against the source with remoteuri/migrateuri pointing at the target, then
migrate_from runs against the target, as Pacemaker would run them on the
two nodes.  Afterwards the domain must run on exactly one side.
"""

import os

import pytest

from test_vm_common import (SYSTEM_URI, VmRun, agent_path, domains, domstate,  # noqa: F401
                            system_libvirtd, virsh, workdir, write_config)

PORT = 49152 + os.getpid() % 60


@pytest.fixture
def pair(system_libvirtd, agent_path, domains, workdir):  # noqa: F811
    from lab.libvirtd import PrivateLibvirtd

    with PrivateLibvirtd() as target:
        domains.uris.append(target.uri)
        name = domains.new("m")
        config = write_config(workdir, name)
        common = dict(config=config, shutdown_timeout_share=10, force_stop="true",
                      remoteuri=target.uri, migrateuri="tcp://%s:%d" % (target.address, PORT))
        source = VmRun(agent_path, os.path.join(workdir, "node1"), hypervisor=SYSTEM_URI,
                       **common)
        dest = VmRun(agent_path, os.path.join(workdir, "node2"), hypervisor=target.uri, **common)
        source.name = dest.name = name
        yield source, dest, target


def _migrate_env(source_node="node1", target_node="node2"):
    return {"OCF_RESKEY_CRM_meta_migrate_source": source_node,
            "OCF_RESKEY_CRM_meta_migrate_target": target_node}


@pytest.mark.parametrize("mode", ["direct", "peer2peer", "tunnelled"])
def test_live_migration_to_the_other_libvirtd(pair, mode):
    source, dest, target = pair
    assert source("start").rc == 0
    assert dest.probe().rc == 7
    options = {"peer2peer": {"migration_peer2peer": "true"},
               "tunnelled": {"migration_tunnelled": "true", "migrateuri": None}}.get(mode, {})
    moved = source("migrate_to", extra=_migrate_env(), timeout=120000,
                   migration_downtime=500, migration_speed=1000,
                   migration_options="auto_converge,abort_on_error", **options)
    assert "could not set migration_downtime" not in moved.stderr, moved
    assert "(auto_converge, abort_on_error)" in moved.stderr
    assert {"direct": "direct live", "peer2peer": "peer-to-peer live",
            "tunnelled": "tunnelled peer-to-peer"}[mode] in moved.stderr
    assert moved.rc == 0, moved
    arrived = dest("migrate_from", extra=_migrate_env(), timeout=60000)
    assert arrived.rc == 0, arrived
    assert domstate(target.uri, source.name) == "running"
    assert domstate(SYSTEM_URI, source.name) is None  # exactly one side
    assert source.probe().rc == 7
    assert dest("monitor").rc == 0
    assert dest("stop").rc == 0
    assert domstate(target.uri, source.name) is None


def test_virtualdomain_migrate_options_reach_libvirt(pair):
    """VirtualDomain's migrate_options: virsh switches become libvirt flags and parameters,
    --migrateuri the data URI.  Mutation: Plan ignoring migrate_options' flags (the domain
    then arrives transient: --persistent not passed)."""
    source, dest, target = pair
    assert source("start").rc == 0
    switches = "--persistent --compressed --verbose --bandwidth 1000 --migrateuri=tcp://%s:%d" % (
        target.address, PORT)
    moved = source("migrate_to", extra=_migrate_env(), timeout=120000, migrateuri=None,
                   migrate_options=switches)
    assert moved.rc == 0, moved
    assert "via tcp://%s:%d" % (target.address, PORT) in moved.stderr, moved
    assert "persist_dest" in moved.stderr and "compressed" in moved.stderr, moved
    arrived = dest("migrate_from", extra=_migrate_env(), timeout=60000)
    assert arrived.rc == 0, arrived
    info = virsh(target.uri, "dominfo", source.name).stdout
    assert any(line.split() == ["Persistent:", "yes"] for line in info.splitlines()), info
    assert domstate(SYSTEM_URI, source.name) is None
    assert dest("stop").rc == 0
    virsh(target.uri, "undefine", source.name)


def test_failed_migration_leaves_the_domain_on_the_source_only(pair):
    source, dest, target = pair
    assert source("start").rc == 0
    # an address the target does not have: its qemu cannot listen, libvirt rolls back
    failed = source("migrate_to", extra=_migrate_env(), timeout=60000,
                    migrateuri="tcp://192.0.2.1:%d" % PORT, migration_downtime=777)
    assert failed.rc == 1, failed
    assert "migration" in failed.reason
    assert domstate(SYSTEM_URI, source.name) == "running"
    assert domstate(target.uri, source.name) is None
    # migration_downtime reached libvirt (and qemu) before the attempt
    assert virsh(SYSTEM_URI, "migrate-getmaxdowntime", source.name).stdout.strip() == "777"
    arrived = dest("migrate_from", extra=_migrate_env(), timeout=3000)
    assert arrived.rc == 1, arrived  # migrate_from confirms; it does not pretend
    assert source("monitor").rc == 0
    assert source("stop").rc == 0


@pytest.mark.parametrize("p2p", ["false", "true"])
def test_hung_migration_is_bounded_by_its_timeout(pair, p2p):
    """The target libvirtd freezes: migrate_to gives up in time; the domain stays here only.

    (A BIOS guest has almost no dirty memory -- even 1 MiB/s migrates it in
    2 s -- so a frozen target is the way to make a migration hang.)
    """
    import signal

    from lab.process import wait_until

    source, _dest, target = pair
    assert source("start").rc == 0
    os.kill(target.proc.pid, signal.SIGSTOP)
    try:
        hung = source("migrate_to", extra=_migrate_env(), timeout=6000, migration_peer2peer=p2p)
    finally:
        os.kill(target.proc.pid, signal.SIGCONT)
    assert hung.rc == 1, hung
    assert hung.seconds < 6.5
    assert "did not finish" in hung.reason or "did not return" in hung.reason, hung
    assert domstate(SYSTEM_URI, source.name) == "running"
    assert source("monitor").rc == 0
    # the target drops its half-prepared incoming domain once our connection is gone
    wait_until(lambda: domstate(target.uri, source.name) is None, 30, 0.5,
               "target to drop the incoming domain")


def test_migrate_to_without_a_running_domain_fails(pair):
    source, _dest, _target = pair
    result = source("migrate_to", extra=_migrate_env())
    assert result.rc == 1 and "not running here" in result.reason


def test_migration_there_and_back(pair):
    """node1 -> node2 -> node1, as the scenario's VM moves away and comes home."""
    source, dest, target = pair
    assert source("start").rc == 0
    env_there, env_back = _migrate_env("node1", "node2"), _migrate_env("node2", "node1")
    assert source("migrate_to", extra=env_there, timeout=60000).rc == 0
    assert dest("migrate_from", extra=env_there, timeout=60000).rc == 0
    back = dest("migrate_to", extra=env_back, timeout=60000, remoteuri=SYSTEM_URI,
                migrateuri="tcp://%s:%d" % (target.network.host_address, PORT + 1))
    assert back.rc == 0, back
    home = source("migrate_from", extra=env_back, timeout=60000)
    assert home.rc == 0, home
    assert domstate(SYSTEM_URI, source.name) == "running"
    assert domstate(target.uri, source.name) is None
    assert dest.probe().rc == 7
    assert source("monitor").rc == 0
    assert source("stop").rc == 0


def test_migration_over_a_qemu_ssh_uri(pair):
    """remoteuri with %n and the +ssh transport, through a real sshd to the target libvirtd.

    The sshd runs in its own network namespace; the target node's name (%n)
    is its address.  libvirt's ssh transport runs `nc -U <socket>` there to
    reach the target libvirtd.  Host keys are pinned by a wrapper (command=),
    so nothing is added to root's known_hosts.
    """
    from support.sshd import NamespaceSshd

    source, dest, target = pair
    with NamespaceSshd() as sshd:
        wrapper = os.path.join(sshd.dir, "ssh-pinned")
        with open(wrapper, "w") as handle:
            handle.write("#!/bin/sh\nexec ssh -F /dev/null -o UserKnownHostsFile=%s "
                         "-o StrictHostKeyChecking=yes -o BatchMode=yes -i %s \"$@\"\n"
                         % (sshd.known_hosts, sshd.identity))
        os.chmod(wrapper, 0o755)
        remote = "qemu+ssh://root@%%n/system?socket=%s&command=%s&proxy=netcat" % (
            target.socket, wrapper)
        env = _migrate_env("node1", sshd.address)
        assert source("start").rc == 0
        moved = source("migrate_to", extra=env, timeout=60000, remoteuri=remote)
        assert moved.rc == 0, moved
        assert "qemu+ssh://root@%s/system" % sshd.address in moved.stderr
        assert dest("migrate_from", extra=env, timeout=60000).rc == 0
    assert domstate(target.uri, source.name) == "running"
    assert domstate(SYSTEM_URI, source.name) is None
    assert dest("stop").rc == 0
