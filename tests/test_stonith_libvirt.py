"""fence_hasf_libvirt and external/hasf-libvirt against the real libvirtd + qemu.

Domains are diskless 64 MiB type='qemu' guests sitting in the BIOS, named
hasffence-<pid>-... and removed afterwards.  "Really rebooted" is checked by
the domain's libvirt ID, which changes with every start.
"""

import pytest
from lab.libvirtd import diskless_domain_xml, ensure_system_libvirtd, unique_domain_name

from test_stonith_helpers import agent, glue_plugins, run, stdin_of

pytestmark = pytest.mark.libvirt
URI = "qemu:///system"


@pytest.fixture(scope="module")
def conn():
    import libvirt

    ensure_system_libvirtd()
    connection = libvirt.open(URI)
    yield connection
    connection.close()


def _cleanup(conn, name):
    import libvirt

    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        return
    if dom.isActive():
        dom.destroy()
    if dom.isPersistent():
        dom.undefine()


@pytest.fixture
def domain(conn):
    name = unique_domain_name("hasffence")
    dom = conn.defineXML(diskless_domain_xml(name))
    dom.create()
    yield dom
    _cleanup(conn, name)


def live_id(dom):
    """The domain's current ID (a virDomain object caches the one it was looked up with)."""
    return dom.connect().lookupByName(dom.name()).ID()


def args(*extra):
    return [agent("libvirt"), "--uri", URI, "--stonith-status-sleep", "0.2",
            "--power-timeout", "10"] + list(extra)


def test_status_off_on(domain):
    name = domain.name()
    result = run(args("-n", name, "-o", "status"))
    assert (result.returncode, result.stdout.strip()) == (0, "Status: ON")
    result = run(args("-n", name, "-o", "off"))
    assert result.returncode == 0 and "Powered OFF" in result.stdout
    assert not domain.isActive()
    result = run(args("-n", name, "-o", "status"))
    assert (result.returncode, result.stdout.strip()) == (2, "Status: OFF")
    result = run(args("-n", name, "-o", "off"))
    assert result.returncode == 0 and "Already OFF" in result.stdout
    result = run(args("-n", name, "-o", "on"))
    assert result.returncode == 0 and domain.isActive()


def test_reboot_through_stdin_with_host_map(domain):
    before = live_id(domain)
    text = stdin_of(action="reboot", port="node1", nodename="node1", uri=URI,
                    host_map="node1:%s;node2:other" % domain.name(), power_timeout=10,
                    stonith_status_sleep=0.2)
    result = run([agent("libvirt")], stdin=text)
    assert result.returncode == 0, result.stderr
    assert "Success: Rebooted" in result.stdout
    assert domain.isActive() and live_id(domain) != before


def test_list_and_monitor(domain):
    result = run(args("-o", "list"))
    assert result.returncode == 0
    assert domain.name() in [line.split(",")[0] for line in result.stdout.split()]
    result = run(args("-o", "list-status"))
    assert "%s,%s,ON" % (domain.name(), domain.UUIDString()) in result.stdout.split()
    assert run(args("-o", "monitor", "--host-map", "n1:%s" % domain.name())).returncode == 0
    bad = run(args("-o", "monitor", "--host-map", "n1:%s n2:hasffence-missing" % domain.name()))
    assert bad.returncode == 1 and "hasffence-missing" in bad.stderr


def test_unknown_domain_is_a_failure_not_a_success(conn):
    """A typo in the map must never become a successful fence."""
    missing = unique_domain_name("hasffence-typo")
    result = run(args("-n", missing, "-o", "off"))
    assert result.returncode == 1 and "not defined" in result.stderr


def test_transient_domain_off_and_reboot(conn):
    name = unique_domain_name("hasffence")
    try:
        conn.createXML(diskless_domain_xml(name), 0)
        result = run(args("-n", name, "-o", "reboot"))
        # verified off (the domain vanished after destroy); it cannot be started again,
        # which is logged -- and the node still counts as fenced
        assert result.returncode == 0, result.stderr
        assert "did not come back on" in result.stderr
    finally:
        _cleanup(conn, name)


def test_bad_uri_is_a_bounded_failure():
    result = run([agent("libvirt"), "--uri", "qemu+unix:///system?socket=/nonexistent/sock",
                  "-n", "x", "-o", "off"])
    assert result.returncode == 1 and "Failed" in result.stderr


def glue_env(dom):
    return {"hostlist": "node1:%s node2:hasffence-other" % dom.name(), "hypervisor_uri": URI,
            "power_timeout": "10", "stonith_status_sleep": "0.2"}


def test_glue_stonith_cli(domain):
    with glue_plugins():
        env = glue_env(domain)
        result = run(["stonith", "-t", "external/hasf-libvirt", "-E", "-l"], env=env)
        assert result.stdout.split() == ["node1", "node2"]
        before = live_id(domain)
        result = run(["stonith", "-t", "external/hasf-libvirt", "-E", "-T", "reset", "NODE1"],
                     env=env)
        assert result.returncode == 0, result.stderr
        assert domain.isActive() and live_id(domain) != before
        result = run(["stonith", "-t", "external/hasf-libvirt", "-E", "-T", "off", "node1"],
                     env=env)
        assert result.returncode == 0 and not domain.isActive()
        result = run(["stonith", "-t", "external/hasf-libvirt", "-E", "-T", "on", "node1"],
                     env=env)
        assert result.returncode == 0 and domain.isActive()
        # node2's domain does not exist: never a success
        result = run(["stonith", "-t", "external/hasf-libvirt", "-E", "-T", "off", "node2"],
                     env=env)
        assert result.returncode != 0


def test_fence_legacy_with_stdin(domain):
    with glue_plugins():
        before = live_id(domain)
        text = stdin_of(plugin="external/hasf-libvirt", action="reboot", nodename="node1",
                        **glue_env(domain))
        result = run(["/usr/sbin/fence_legacy"], stdin=text)
        assert result.returncode == 0, result.stdout + result.stderr
        assert domain.isActive() and live_id(domain) != before


@pytest.fixture
def ssh_uri(domain):
    """A remote URI: libvirt's libssh transport to an sshd in a network namespace
    (key auth, host key checked against a known_hosts file) whose far end reaches
    the host's libvirtd socket through a bind mount made before the namespace."""
    import os
    import subprocess
    import tempfile

    from support.sshd import NamespaceSshd

    tmp = tempfile.mkdtemp(prefix="hasf-fence-lvssh-")
    subprocess.run(["mount", "--bind", "/run/libvirt", tmp], check=True, timeout=30)
    try:
        with NamespaceSshd(hostname="hypervisor") as sshd:
            yield ("qemu+libssh://root@%s/system?keyfile=%s&known_hosts=%s&sshauth=privkey"
                   "&socket=%s/libvirt-sock" % (sshd.address, sshd.identity, sshd.known_hosts,
                                                tmp)), sshd
    finally:
        subprocess.run(["umount", tmp], timeout=30)
        os.rmdir(tmp)


def test_remote_uri_over_ssh(domain, ssh_uri):
    """fence_virsh cannot take a URI (#125); here any libvirt URI works, e.g. over ssh."""
    uri, sshd = ssh_uri
    name = domain.name()
    result = run([agent("libvirt"), "--uri", uri, "-n", name, "-o", "status"])
    assert (result.returncode, result.stdout.strip()) == (0, "Status: ON"), result.stderr
    before = live_id(domain)
    result = run([agent("libvirt")], stdin=stdin_of(action="reboot", port="node1", uri=uri,
                                                    host_map="node1:%s" % name,
                                                    stonith_status_sleep=0.2))
    assert result.returncode == 0, result.stderr
    assert domain.isActive() and live_id(domain) != before
    # a hypervisor whose host key is not the known one is refused, never "off"
    with open(sshd.known_hosts) as handle:
        known = handle.read()
    with open(sshd.known_hosts, "w") as handle:
        handle.write(known.split()[0] + " ssh-ed25519 "
                     "AAAAC3NzaC1lZDI1NTE5AAAAIHasfHasfHasfHasfHasfHasfHasfHasfHasfHasfHasf\n")
    result = run([agent("libvirt"), "--uri", uri, "-n", name, "-o", "off"])
    assert result.returncode == 1 and domain.isActive(), result.stdout
    assert "host key" in result.stderr.lower() or "known" in result.stderr.lower(), result.stderr
