"""Proves lab.libvirtd: host libvirtd, quick diskless domains, and live
migration between independent libvirtd instances on this machine."""

import os
import shutil
import threading
import time

import pytest

from lab import libvirtd as L

pytestmark = [
    pytest.mark.libvirt,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, libvirtd)"),
    pytest.mark.skipif(not shutil.which("libvirtd") or not shutil.which("qemu-system-x86_64"),
                       reason="libvirtd/qemu not installed"),
]
libvirt = pytest.importorskip("libvirt")


def _open(uri):
    return L.call_with_timeout(libvirt.open, uri, timeout=15)


def _names(conn):
    return sorted(d.name() for d in L.call_with_timeout(conn.listAllDomains, timeout=15))


def _destroy_everywhere(name, uris):
    for uri in uris:
        try:
            L.virsh(uri, "destroy", name, timeout=15)
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass


def test_ensure_system_libvirtd_concurrent_idempotent():
    results, errors = [], []

    def call():
        try:
            results.append(L.ensure_system_libvirtd())
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and results == [L.SYSTEM_URI] * 3
    assert L.virsh(L.SYSTEM_URI, "uri", timeout=10).stdout.strip() == L.SYSTEM_URI


def test_unique_names_and_xml():
    a, b = L.unique_domain_name(), L.unique_domain_name()
    assert a != b and str(os.getpid()) in a
    xml = L.diskless_domain_xml(a, user_net=True)
    assert "<domain type='qemu'>" in xml and "machine='pc'" in xml and "type='user'" in xml
    assert "<disk" not in xml


@pytest.mark.slow
def test_diskless_domain_starts_fast_on_system():
    L.ensure_system_libvirtd()
    conn = _open(L.SYSTEM_URI)
    name = L.unique_domain_name()
    try:
        t = time.monotonic()
        dom = L.call_with_timeout(conn.createXML, L.diskless_domain_xml(name), 0, timeout=60)
        elapsed = time.monotonic() - t
        print("diskless domain started in %.2fs" % elapsed)
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        assert elapsed < 10
    finally:
        _destroy_everywhere(name, [L.SYSTEM_URI])
        conn.close()


@pytest.mark.slow
def test_live_migration_system_to_private_and_between_privates():
    L.ensure_system_libvirtd()
    sysconn = _open(L.SYSTEM_URI)
    name = L.unique_domain_name("mig")
    with L.PrivateLibvirtd() as p1, L.PrivateLibvirtd(network=p1.network) as p2:
        uris = [L.SYSTEM_URI, p1.uri, p2.uri]
        c1, c2 = _open(p1.uri), _open(p2.uri)
        try:
            L.call_with_timeout(sysconn.createXML, L.diskless_domain_xml(name), 0, timeout=60)
            # the private instances are really independent
            assert name in _names(sysconn) and name not in _names(c1) + _names(c2)

            t = time.monotonic()
            dom = L.live_migrate(sysconn, c1, name, p1.address, timeout=60)
            print("system -> private live migration %.2fs" % (time.monotonic() - t))
            assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
            assert name not in _names(sysconn) and name in _names(c1)

            t = time.monotonic()
            dom = L.live_migrate(c1, c2, name, p2.address, timeout=60, p2p_uri=p2.uri)
            print("private -> private peer-to-peer live migration %.2fs"
                  % (time.monotonic() - t))
            assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
            assert name not in _names(c1) and name in _names(c2)

            t = time.monotonic()
            dom = L.live_migrate(c2, sysconn, name, p1.network.host_address, timeout=60)
            print("private -> system live migration %.2fs" % (time.monotonic() - t))
            assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
            assert name in _names(sysconn) and name not in _names(c1) + _names(c2)
            # virsh against the private URI works from the host too
            assert L.virsh(p1.uri, "list", "--all", timeout=15).returncode == 0
        finally:
            _destroy_everywhere(name, uris)
            for conn in (c1, c2, sysconn):
                conn.close()
    assert not os.path.exists(p1.workdir)


def test_call_with_timeout_bounds_calls():
    with pytest.raises(TimeoutError):
        L.call_with_timeout(time.sleep, 5, timeout=0.2)
    with pytest.raises(ZeroDivisionError):
        L.call_with_timeout(lambda: 1 / 0, timeout=5)
