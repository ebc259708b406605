"""Proves support.pacemaker starts real, isolated corosync+pacemaker clusters."""

import os
import shutil
import subprocess
import textwrap
import time

import pytest

from support.pacemaker import PacemakerCluster
from lab.process import wait_until

pytestmark = [
    pytest.mark.pacemaker,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)"),
    pytest.mark.skipif(not shutil.which("pacemakerd") or not shutil.which("corosync"),
                       reason="pacemaker/corosync not installed"),
]

OCF_AGENT = textwrap.dedent('''\
    #!/usr/bin/python3
    """Minimal OCF agent: state file in the node's private /run."""
    import os, sys
    STATE = "/run/hasf-dummy-" + os.environ.get("OCF_RESOURCE_INSTANCE", "x")
    action = sys.argv[1] if len(sys.argv) > 1 else ""
    if action == "meta-data":
        print('<?xml version="1.0"?><resource-agent name="Dummy" version="1.0">'
              '<version>1.1</version><shortdesc lang="en">d</shortdesc>'
              '<longdesc lang="en">d</longdesc><parameters/><actions>'
              '<action name="start" timeout="20s"/><action name="stop" timeout="20s"/>'
              '<action name="monitor" timeout="20s" interval="10s"/>'
              '<action name="meta-data" timeout="5s"/></actions></resource-agent>')
        sys.exit(0)
    if action == "start":
        open(STATE, "w").close(); sys.exit(0)
    if action == "stop":
        if os.path.exists(STATE): os.unlink(STATE)
        sys.exit(0)
    if action == "monitor":
        sys.exit(0 if os.path.exists(STATE) else 7)
    sys.exit(3)
''')

FENCE_AGENT = textwrap.dedent('''\
    #!/usr/bin/python3
    """Fence agent visible only inside the node's /usr/sbin."""
    import sys
    opts = dict(l.strip().split("=", 1) for l in sys.stdin if "=" in l) if len(sys.argv) == 1 else {}
    action = opts.get("action", "")
    if "-o" in sys.argv:
        action = sys.argv[sys.argv.index("-o") + 1]
    if action == "metadata":
        print('<?xml version="1.0"?><resource-agent name="%s" shortdesc="test">'
              '<longdesc>test</longdesc><parameters/><actions><action name="on"/>'
              '<action name="off"/><action name="reboot"/><action name="status"/>'
              '<action name="list"/><action name="monitor"/><action name="metadata"/>'
              '</actions></resource-agent>' % sys.argv[0].rsplit("/", 1)[-1])
    sys.exit(0)
''')


def _write_exec(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)


@pytest.fixture
def agent_dirs(tmp_path):
    ocf = tmp_path / "ocf"
    sbin = tmp_path / "sbin"
    ocf.mkdir()
    sbin.mkdir()
    _write_exec(str(ocf / "Dummy"), OCF_AGENT)
    _write_exec(str(sbin / "fence_hasf_dir"), FENCE_AGENT)
    single = tmp_path / "fence_hasf_single"
    _write_exec(str(single), FENCE_AGENT)
    return str(ocf), str(sbin), str(single)


def test_one_node_with_private_agents(agent_dirs):
    ocf, sbin, single = agent_dirs
    t0 = time.monotonic()
    with PacemakerCluster(["node1"], sbin_dir=sbin,
                          extra_binds=[(ocf, "/usr/lib/ocf/resource.d/hasf"),
                                       (single, "/usr/sbin/fence_hasf_single")]) as c:
        elapsed = c.wait_online(40)
        print("one node online with DC after %.2fs (log dir %s)" % (elapsed, c.log_dir))
        assert c.dc() == "node1"
        assert c.run("node1", ["hostname"]).stdout.strip() == "node1"
        # agents exist inside the node only
        assert not os.path.exists("/usr/lib/ocf/resource.d/hasf")
        assert not os.path.exists("/usr/sbin/fence_hasf_dir")
        agents = c.run("node1", ["crm_resource", "--list-agents", "ocf:hasf"]).stdout
        assert "Dummy" in agents
        for name in ("fence_hasf_dir", "fence_hasf_single"):
            md = c.run("node1", ["stonith_admin", "--metadata", "--agent", name], timeout=20)
            assert md.returncode == 0 and name in md.stdout, md.stderr
        # a resource really runs through pacemaker-execd
        rsc = ('<primitive id="d1" class="ocf" provider="hasf" type="Dummy">'
               '<operations><op id="d1-mon" name="monitor" interval="10s"/></operations>'
               '</primitive>')
        r = c.run("node1", ["cibadmin", "--create", "-o", "resources", "--xml-text", rsc])
        assert r.returncode == 0, r.stderr

        def started():
            return any(x.get("id") == "d1" and x.get("role") == "Started"
                       for x in c.status().iter("resource"))
        wait_until(started, 20, 0.25, "d1 started")
        assert c.run("node1", ["test", "-e", "/run/hasf-dummy-d1"]).returncode == 0
        assert not os.path.exists("/run/hasf-dummy-d1")
        assert "d1" in c.cib_xml("node1")
        log_dir = c.log_dir
        assert os.path.exists(os.path.join(log_dir, "node1", "log", "pacemaker", "pacemaker.log"))
    assert not os.path.exists(log_dir)      # cleaned up after success
    assert time.monotonic() - t0 < 60


def test_two_node_crash_restart_and_concurrent_cluster():
    with PacemakerCluster(["node1", "node2"]) as c2, PacemakerCluster(["node1"]) as c1:
        print("2 nodes online after %.2fs" % c2.wait_online(40))
        print("concurrent 1-node cluster online after %.2fs" % c1.wait_online(40))
        assert c2.online_nodes() == ["node1", "node2"]
        assert c1.online_nodes() == ["node1"]       # no cross-talk between clusters
        assert 'two_node: 1' in open(os.path.join(c2.log_dir, "node1", "etc_corosync",
                                                  "corosync.conf")).read()
        t = time.monotonic()
        c2.kill_node("node2")
        with pytest.raises(RuntimeError):
            c2.run("node2", ["true"])
        c2.wait_online(30, nodes=["node1"])
        print("node2 seen offline after %.2fs" % (time.monotonic() - t))
        t = time.monotonic()
        c2.restart_node("node2")
        c2.wait_online(40)
        print("node2 back online after %.2fs" % (time.monotonic() - t))
        netns = [n.ns.name for n in c2.nodes.values()]
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    assert not any(n in out for n in netns)


FENCE_RECORDER = textwrap.dedent('''\
    #!/usr/bin/python3
    """Fence agent that records each request in a host file and succeeds."""
    import sys
    LOG = "%s"
    opts = dict(l.strip().split("=", 1) for l in sys.stdin if "=" in l)
    action = opts.get("action", "reboot")
    if action == "metadata":
        print('<?xml version="1.0"?><resource-agent name="fence_hasf_rec" shortdesc="t">'
              '<longdesc>t</longdesc><parameters><parameter name="port" unique="0" '
              'required="0"><content type="string"/><shortdesc lang="en">p</shortdesc>'
              '</parameter></parameters><actions><action name="on"/><action name="off"/>'
              '<action name="reboot"/><action name="status"/><action name="monitor"/>'
              '<action name="metadata"/></actions></resource-agent>')
        sys.exit(0)
    with open(LOG, "a") as f:
        f.write("%%s %%s\\n" %% (action, opts.get("port", opts.get("plug", ""))))
    sys.exit(0)
''')


def test_two_node_stonith_fences_crashed_node(tmp_path):
    log = tmp_path / "fence.log"
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    _write_exec(str(sbin / "fence_hasf_rec"), FENCE_RECORDER % log)
    with PacemakerCluster(["node1", "node2"], sbin_dir=str(sbin), stonith_enabled=True) as c:
        c.wait_online(40)
        dev = ('<primitive id="fence" class="stonith" type="fence_hasf_rec">'
               '<instance_attributes id="fence-ia">'
               '<nvpair id="fence-hl" name="pcmk_host_list" value="node1 node2"/>'
               '</instance_attributes></primitive>')
        r = c.run("node1", ["cibadmin", "--create", "-o", "resources", "--xml-text", dev])
        assert r.returncode == 0, r.stderr
        wait_until(lambda: any(x.get("id") == "fence" and x.get("role") == "Started"
                               for x in c.status().iter("resource")), 20, 0.25, "fence started")
        t = time.monotonic()
        c.kill_node("node2")
        wait_until(lambda: log.exists() and "node2" in log.read_text(), 30, 0.2,
                   "node2 fenced")
        print("node2 fenced %.2fs after kill" % (time.monotonic() - t))
        hist = c.run("node1", ["stonith_admin", "--history", "node2"], timeout=15).stdout
        assert "node2" in hist
