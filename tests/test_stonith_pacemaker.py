"""fence_hasf_libvirt under a real one-node Pacemaker (pacemaker-fenced runs it).

A stonith resource of type fence_hasf_libvirt in the CIB, with
pcmk_host_map target1 -> a real qemu domain and target2 -> a domain that
does not exist.  `stonith_admin --reboot target1` must succeed, the domain
must really have been off (it runs again with a new libvirt ID), and the
fencing history must say so; `--reboot target2` must fail and be recorded
as failed -- never a success for a node that was not powered off.
`stonith_admin -M -a` reads every hasf fence agent's meta-data in the node.
"""

import os
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET

import pytest
from lab.libvirtd import diskless_domain_xml, ensure_system_libvirtd, unique_domain_name
from support.pacemaker import PacemakerCluster
from lab.process import wait_until

from test_stonith_helpers import plugin, sbin_dir

pytestmark = [pytest.mark.pacemaker, pytest.mark.libvirt, pytest.mark.slow]
URI = "qemu:///system"


def live_id(conn, name):
    return conn.lookupByName(name).ID()


@pytest.fixture(scope="module")
def domain():
    import libvirt

    ensure_system_libvirtd()
    conn = libvirt.open(URI)
    name = unique_domain_name("hasffence")
    dom = conn.defineXML(diskless_domain_xml(name))
    dom.create()
    yield conn, name
    dom = conn.lookupByName(name)
    if dom.isActive():
        dom.destroy()
    dom.undefine()
    conn.close()


@pytest.fixture(scope="module")
def cluster(domain, node_uri):
    # the glue plugin appears in the node's cluster-glue plugin dir only (overlay)
    glue = [(plugin("libvirt"), "/usr/lib/stonith/plugins/external/hasf-libvirt")]
    with PacemakerCluster(["node1"], stonith_enabled=True, sbin_dir=sbin_dir(),
                          extra_binds=glue) as c:
        c.wait_online(60)
        yield c


@pytest.fixture(scope="module")
def node_uri():
    """A URI for the host's libvirtd that works inside the node.

    The socket lives in the host's /run, which the node replaces by its own
    tmpfs; a bind mount of /run/libvirt under a temp dir (made before the node
    starts, so its mount namespace inherits it) plus an explicit socket= URI
    reaches it -- exactly what the `uri` parameter is for."""
    tmp = tempfile.mkdtemp(prefix="hasf-fence-lv-")
    subprocess.run(["mount", "--bind", "/run/libvirt", tmp], check=True, timeout=30)
    try:
        yield "qemu+unix:///system?socket=%s/libvirt-sock" % tmp
    finally:
        subprocess.run(["umount", tmp], timeout=30)
        os.rmdir(tmp)


def primitive(rid, agent, attrs):
    nv = "".join('<nvpair id="%s-%s" name="%s" value="%s"/>' % (rid, k, k, v)
                 for k, v in attrs.items())
    return ('<primitive id="%s" class="stonith" type="%s">'
            '<instance_attributes id="%s-ia">%s</instance_attributes>'
            '<operations><op id="%s-mon" name="monitor" interval="60s"/></operations>'
            '</primitive>' % (rid, agent, rid, nv, rid))


def device_xml(dom_name, uri):
    return primitive("fence-virt", "fence_hasf_libvirt", {
        "uri": uri, "pcmk_host_map": "target1:%s;target2:hasffence-no-such-domain" % dom_name,
        "power_timeout": "10", "stonith_status_sleep": "0.2",
        "pcmk_reboot_retries": "1", "pcmk_reboot_timeout": "40s"})


def history(cluster, target):
    out = cluster.run("node1", ["stonith_admin", "--history", target, "--verbose",
                                  "--output-as=xml"],
                      timeout=30).stdout
    return [(e.get("action"), e.get("target"), e.get("status"))
            for e in ET.fromstring(out).iter("fence_event")]


def test_metadata_through_stonith_admin(cluster):
    for device, must in (("ipmi", "ipport"), ("libvirt", "uri"), ("demo", "host_map")):
        result = cluster.run("node1", ["stonith_admin", "-M", "-a", "fence_hasf_" + device],
                             timeout=30)
        assert result.returncode == 0, result.stderr
        root = ET.fromstring(result.stdout)
        assert root.get("name") == "fence_hasf_" + device
        assert must in {p.get("name") for p in root.iter("parameter")}


def test_reboot_through_pacemaker_fenced(cluster, domain, node_uri):
    conn, name = domain
    result = cluster.run("node1", ["cibadmin", "-C", "-o", "resources", "-X", device_xml(name, node_uri)])
    assert result.returncode == 0, result.stderr

    def registered():
        out = cluster.run("node1", ["stonith_admin", "--list-registered"]).stdout
        return "fence-virt" in out
    wait_until(registered, 30, 0.5, "fence-virt registered with pacemaker-fenced")
    out = cluster.run("node1", ["stonith_admin", "--list", "target1"]).stdout
    assert "fence-virt" in out

    before = live_id(conn, name)
    start = time.monotonic()
    result = cluster.run("node1", ["stonith_admin", "--reboot", "target1", "--timeout", "60"],
                         timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr + cluster.dump_logs(40)
    assert time.monotonic() - start < 60
    # really off in between: qemu was restarted, so libvirt gave it a new ID
    assert conn.lookupByName(name).isActive() and live_id(conn, name) != before
    assert ("reboot", "target1", "success") in history(cluster, "target1")

    # a target whose domain does not exist is never reported fenced
    result = cluster.run("node1", ["stonith_admin", "--reboot", "target2", "--timeout", "60"],
                         timeout=90)
    assert result.returncode != 0, result.stdout
    events = wait_until(lambda: history(cluster, "target2"), 15, 0.5, "target2 history")
    assert events and all(status != "success" for _a, _t, status in events), events


def test_reboot_through_the_glue_plugin_and_fence_legacy(cluster, domain, node_uri):
    """class=stonith type=external/hasf-libvirt: pacemaker-fenced -> fence_legacy ->
    stonith -E -T reset -> the hasf-libvirt plugin."""
    conn, name = domain
    xml = primitive("fence-glue", "external/hasf-libvirt", {
        "hostlist": "target3:%s" % name, "hypervisor_uri": node_uri, "power_timeout": "10",
        "stonith_status_sleep": "0.2", "pcmk_host_list": "target3",
        "pcmk_reboot_retries": "1", "pcmk_reboot_timeout": "40s"})
    result = cluster.run("node1", ["cibadmin", "-C", "-o", "resources", "-X", xml])
    assert result.returncode == 0, result.stderr
    wait_until(lambda: "fence-glue" in cluster.run(
        "node1", ["stonith_admin", "--list-registered"]).stdout, 30, 0.5, "fence-glue")
    before = live_id(conn, name)
    result = cluster.run("node1", ["stonith_admin", "--reboot", "target3", "--timeout", "60"],
                         timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr + cluster.dump_logs(40)
    assert conn.lookupByName(name).isActive() and live_id(conn, name) != before
    assert ("reboot", "target3", "success") in history(cluster, "target3")
