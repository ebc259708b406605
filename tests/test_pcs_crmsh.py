"""The tools users drive agents with: Debian's pcs 0.11 and crmsh 4.4 on hasf's installed agents.

Every agent and fence device of packaging/executables.txt is installed with
`make install DESTDIR=...` and made visible where Pacemaker looks for them --
/usr/lib/ocf/resource.d/hasf and /usr/sbin -- inside a private mount
namespace only (lab.nsproc.NsHost: a bind mount and a read-only overlay; the
host's directories are never touched).  There pcs and crm run as a user
would: `pcs resource describe`, `pcs stonith describe`, `crm ra info` for
each, and `pcs -f FILE resource create ... ocf:hasf:...` /
`pcs -f FILE stonith create ... fence_hasf_ipmi ...` with hasf's parameters
on a CIB file (no cluster needed), a misspelt parameter refused as a user
would see it.  pcs reads the meta-data of an OCF 1.1 agent only if it
validates against its ocf-1.1.rng, so these tests also hold the meta-data
to the schema the tool enforces.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)"),
    pytest.mark.skipif(not (shutil.which("pcs") and shutil.which("crm")),
                       reason="pcs and crmsh not installed (packaging/debian-packages.txt)"),
]

def _manifest(kind):
    from hasf.cib.agents import source_manifest

    return [entry[1] for entry in source_manifest() if entry[0] == kind]


OCF_AGENTS = _manifest("ocf")
FENCE_AGENTS = ["fence_hasf_" + name for name in _manifest("fence")]


def _declared_parameters(name):
    """Parameter names from the agent's own declaration (what the tools must show)."""
    import importlib

    from hasf.cib.agents import source_manifest
    from hasf import ocf

    module = next(e[2] for e in source_manifest() if e[0] == "ocf" and e[1] == name)
    mod = importlib.import_module(module)
    cls = next(v for v in vars(mod).values() if isinstance(v, type)
               and issubclass(v, ocf.ResourceAgent) and v.name == name)
    return [p.name for p in cls.parameters]


class Host:
    """A private mount namespace in which hasf's installed agents are where tools look."""

    def __init__(self, destdir):
        from lab.netns import Network
        from lab.nsproc import NsHost

        self.scratch = tempfile.mkdtemp(prefix="hasf-pcs-")
        self.network = Network().create()
        self.ns = NsHost(self.network.add_namespace().name, "pcshost", self.scratch).start()
        self.ns.bind(os.path.join(destdir, "usr/lib/ocf/resource.d/hasf"),
                     "/usr/lib/ocf/resource.d/hasf", readonly=True)
        self.ns.overlay_lower(os.path.join(destdir, "usr/sbin"), "/usr/sbin")

    def run(self, *argv, timeout=60):
        return self.ns.run(list(argv), timeout=timeout, env={"HOME": self.scratch})

    def close(self):
        self.ns.kill_all()
        self.network.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    destdir = str(tmp_path_factory.mktemp("root"))
    installed = subprocess.run(["make", "-C", REPO, "install", "DESTDIR=%s" % destdir,
                                "PYTHON=%s" % sys.executable],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    made = Host(destdir)
    yield made
    made.close()


def _ok(result):
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    return result.stdout


# --- describe -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", OCF_AGENTS)
def test_pcs_resource_describe(host, name):
    """pcs shows every parameter, and no warning about the agent's meta-data.
    Mutation: emit reloadable="yes" (not in pcs's ocf-1.1.rng) -> pcs refuses the agent."""
    result = host.run("pcs", "resource", "describe", "--full", "ocf:hasf:" + name)
    out = _ok(result)
    assert result.stderr == "", result.stderr
    assert out.startswith("Assumed agent name 'ocf:hasf:%s'" % name) or \
        out.startswith("ocf:hasf:%s" % name), out[:200]
    for param in _declared_parameters(name):
        assert "\n  %s" % param in out, (param, out)


@pytest.mark.parametrize("name", FENCE_AGENTS)
def test_pcs_stonith_describe(host, name):
    """pcs reads the device's meta-data (OCF 1.0 schema) and merges Pacemaker's own stonith
    parameters.  Mutation: unique="no" in fence_agent.metadata -> pcs refuses the agent."""
    result = host.run("pcs", "stonith", "describe", "--full", name)
    out = _ok(result)
    assert result.stderr == "", result.stderr
    assert out.startswith(name), out[:200]
    assert "\n  plug" in out or "\n  port" in out, out
    assert "\n  pcmk_host_list" in out  # Pacemaker's own stonith parameters merged in


@pytest.mark.parametrize("name", ["ocf:hasf:" + n for n in OCF_AGENTS]
                         + ["stonith:" + n for n in FENCE_AGENTS])
def test_crm_ra_info(host, name):
    """crmsh parses the meta-data: every parameter and the operations (reload-agent where
    advertised) are shown.  Mutation: a parameter's name attribute misspelt in
    metadata._parameter -> the declared name is missing from the output."""
    result = host.run("crm", "ra", "info", name)
    out = _ok(result)
    assert "ERROR" not in result.stderr and "WARNING" not in result.stderr, result.stderr
    if name.startswith("ocf:"):
        agent = name.rsplit(":", 1)[1]
        for param in _declared_parameters(agent):
            assert re.search(r"^%s\*? \(" % re.escape(param), out, re.M), (param, out)
        defaults = out.split("Operations' defaults")[1]
        assert re.search(r"^ +start +timeout=", defaults, re.M), out
        reloads = agent in ("VirtualMachine", "Filesystem", "OCFS2Membership", "iscsi")
        assert bool(re.search(r"^ +reload-agent +timeout=", defaults, re.M)) == reloads, out
    else:
        assert re.search(r"^(plug|port)\b", out, re.M), out


# --- create --------------------------------------------------------------------------------
RESOURCES = [
    ("vm1", "ocf:hasf:VirtualMachine",
     ["config=/etc/hasf/vm1.xml", "hypervisor=qemu:///system", "monitor_scripts=/usr/bin/true",
      "migration_transport=ssh"], []),
    ("store", "ocf:hasf:Filesystem",
     ["device=/dev/disk/by-label/store", "directory=/srv/store", "fstype=ocfs2",
      "statusfile_prefix=.check/"], ["clone"]),
    ("o2", "ocf:hasf:OCFS2Membership",
     ["nodes=node1:192.168.10.1 node2:192.168.10.2", "cluster_name=hasf"],
     ["clone", "notify=true"]),
    ("tgt", "ocf:hasf:iSCSITarget", ["iqn=iqn.2024-01.org.example:store", "tid=1"], []),
    ("lun", "ocf:hasf:iSCSILogicalUnit",
     ["target_iqn=iqn.2024-01.org.example:store", "lun=1", "path=/dev/vg/store"], []),
    ("ini", "ocf:hasf:iscsi",
     ["portal=192.168.10.10:3260", "target=iqn.2024-01.org.example:store"], []),
]


@pytest.fixture
def cib(host, tmp_path):
    """An empty CIB file, as `cibadmin --empty` writes one (what pcs -f edits offline)."""
    path = tmp_path / "cib.xml"
    path.write_text(_ok(subprocess.run(["cibadmin", "--empty"], capture_output=True,
                                       text=True, timeout=30)))
    return str(path)


def _nvpairs(cib_path, rid):
    root = ET.parse(cib_path).getroot()
    found = [p for p in root.iter("primitive") if p.get("id") == rid]
    assert len(found) == 1, ET.tostring(root)
    return {nv.get("name"): nv.get("value") for nv in found[0].iter("nvpair")
            if nv.get("id", "").startswith(rid + "-instance_attributes")}


FENCE = ["ip=192.168.10.101", "username=admin", "password=s3cret", "lanplus=1",
         "pcmk_host_list=node1"]


def test_pcs_creates_every_agent_with_hasf_parameters(host, cib):
    """Every agent and fence_hasf_ipmi created offline with hasf's parameters; the result
    passes crm_verify.  Mutation: content type "duration" in metadata._parameter (not in
    pcs's schema) -> pcs refuses to create the resources."""
    _ok(host.run("pcs", "-f", cib, "stonith", "create", "fence-node1", "fence_hasf_ipmi",
                 *FENCE))
    for rid, agent, params, extra in RESOURCES:
        result = host.run("pcs", "-f", cib, "resource", "create", rid, agent, *params, *extra)
        _ok(result)
        assert "Warning" not in result.stderr, result.stderr
        want = dict(p.split("=", 1) for p in params)
        assert _nvpairs(cib, rid) == want
    verified = subprocess.run(["crm_verify", "-V", "-x", cib], capture_output=True, text=True,
                              timeout=60)
    assert verified.returncode == 0, verified.stderr


def test_pcs_refuses_a_parameter_the_agent_does_not_have(host, cib):
    """The mutation-proof of the test above: pcs really checks names against hasf's
    meta-data (Filesystem has no `mount_options`; VirtualMachine no `migrate_option`), and
    a required parameter (device) is required."""
    for rid, agent, bad in (("s", "ocf:hasf:Filesystem", "mount_options=noatime"),
                            ("v", "ocf:hasf:VirtualMachine", "migrate_option=x")):
        good = next(r for r in RESOURCES if r[1] == agent)[2]
        result = host.run("pcs", "-f", cib, "resource", "create", rid, agent, *good, bad)
        assert result.returncode != 0, result.stdout
        assert bad.split("=")[0] in result.stderr and "invalid" in result.stderr.lower(), \
            result.stderr
    assert "primitive" not in open(cib).read()
    missing = host.run("pcs", "-f", cib, "resource", "create", "m", "ocf:hasf:Filesystem",
                       "directory=/srv/x", "fstype=ext4")
    assert missing.returncode != 0 and "device" in missing.stderr, missing.stderr


def test_pcs_creates_fence_hasf_ipmi(host, cib):
    """fence_ipmilan's parameter names as hasf takes them; a misspelt one refused."""
    result = host.run("pcs", "-f", cib, "stonith", "create", "fence-node1", "fence_hasf_ipmi",
                      *FENCE)
    _ok(result)
    assert "Warning" not in result.stderr, result.stderr
    assert _nvpairs(cib, "fence-node1") == dict(p.split("=", 1) for p in FENCE)
    wrong = host.run("pcs", "-f", cib, "stonith", "create", "fence-node2", "fence_hasf_ipmi",
                     "ip=192.168.10.102", "ipadress=192.168.10.102")
    assert wrong.returncode != 0 and "ipadress" in wrong.stderr, wrong.stderr
