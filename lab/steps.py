"""The lab's steps: one per installed executable that has a real backend here.

A step is a title and a run() returning (ok, text).  `plan(root)` reads the
manifest (packaging/executables.txt) and picks the recipe for each entry, so
a new agent only needs a recipe here to join the demo.
"""

import os
import subprocess
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLACES = {"ocf": "usr/lib/ocf/resource.d/hasf/{}", "fence": "usr/sbin/fence_hasf_{}",
          "glue": "usr/lib/stonith/plugins/external/hasf-{}", "bin": "usr/bin/{}"}


class Step:
    def __init__(self, title, func, *args):
        self.title, self.func, self.args = title, func, args

    def run(self):
        return self.func(*self.args)


def sh(argv, input=None, timeout=120, env=None):
    """Run a tool; the lab shows what it printed."""
    return subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                          env=env)


def world_readable_dir(prefix):
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o755)
    return path


# --- recipes --------------------------------------------------------------------------------

def ocf_virtual_machine(agent):
    """ocf-tester on a real qemu domain (diskless, TCG) under qemu:///system."""
    from support.libvirtd import diskless_domain_xml, ensure_system_libvirtd, unique_domain_name

    uri = ensure_system_libvirtd()
    name = unique_domain_name("hasflab")
    config = os.path.join(world_readable_dir("hasf-lab-vm-"), name + ".xml")
    with open(config, "w") as handle:
        handle.write(diskless_domain_xml(name))
    os.chmod(config, 0o644)
    # The BIOS-only guest ignores ACPI: give the graceful part of stop 10% of its timeout.
    result = sh(["ocf-tester", "-n", "vm1", "-o", "config=" + config, "-o", "hypervisor=" + uri,
                 "-o", "shutdown_timeout_share=10", agent], timeout=600)
    sh(["virsh", "-c", uri, "destroy", name], timeout=30)
    text = "domain %s, config %s\n%s" % (name, config, result.stdout.strip())
    return result.returncode == 0, text


def fence_ipmi(agent):
    """fence_hasf_ipmi against OpenIPMI's ipmi_sim: status, reboot (verified), off, status."""
    from support.ipmisim import IpmiSim

    lines, ok = [], True
    with IpmiSim(password="lab-secret") as bmc:
        base = "ip=127.0.0.1\nipport=%d\nusername=admin\npassword=lab-secret\nlanplus=1\n" % bmc.port
        for action, expect in (("status", 0), ("reboot", 0), ("status", 0), ("off", 0),
                               ("status", 2), ("on", 0)):
            result = sh([agent], input="action=%s\nnodename=node1\n%s" % (action, base))
            good = result.returncode == expect
            ok &= good
            lines.append("%-7s rc=%d (want %d) %s" % (action, result.returncode, expect,
                                                      (result.stdout + result.stderr).strip()))
        lines.append("BMC saw: %s" % ", ".join(bmc.calls()))
        ok &= "set power 0" in bmc.calls() and bmc.power
    return ok, "\n".join(lines)


def fence_libvirt(agent):
    """fence_hasf_libvirt reboots a running qemu domain: verified off, then on again."""
    from support.libvirtd import diskless_domain_xml, ensure_system_libvirtd, unique_domain_name

    uri = ensure_system_libvirtd()
    name = unique_domain_name("hasflab")
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as handle:
        handle.write(diskless_domain_xml(name))
    sh(["virsh", "-c", uri, "define", handle.name], timeout=60)
    sh(["virsh", "-c", uri, "start", name], timeout=60)
    try:
        before = sh(["virsh", "-c", uri, "domid", name]).stdout.strip()
        result = sh([agent], input="action=reboot\nuri=%s\nport=%s\nnodename=node1\n" % (uri, name))
        after = sh(["virsh", "-c", uri, "domid", name]).stdout.strip()
        status = sh([agent], input="action=status\nuri=%s\nport=%s\n" % (uri, name))
    finally:
        sh(["virsh", "-c", uri, "destroy", name], timeout=60)
        sh(["virsh", "-c", uri, "undefine", name], timeout=60)
        os.unlink(handle.name)
    ok = result.returncode == 0 and before and after and before != after and status.returncode == 0
    return ok, "reboot rc=%d; domain id %s -> %s (a new qemu process); status rc=%d" % (
        result.returncode, before, after, status.returncode)


def bin_hasf_cib(tool):
    """hasf-cib on the seed scenario: build, crm_verify, crm_simulate the crash test."""
    spec = os.path.join(REPO, "cib", "examples", "hasf-demo.toml")
    lines = []
    built = sh([tool, "build", spec])
    lines.append("build rc=%d (%d bytes of CIB XML)" % (built.returncode, len(built.stdout)))
    verify = sh([tool, "verify", spec], timeout=300)
    lines.append("verify rc=%d %s" % (verify.returncode, (verify.stdout + verify.stderr).strip()))
    simulate = sh([tool, "simulate", spec], timeout=300)
    lines.append(simulate.stdout.rstrip() or simulate.stderr.rstrip())
    ok = built.returncode == verify.returncode == simulate.returncode == 0
    return ok, "\n".join(lines)


RECIPES = {("ocf", "VirtualMachine"): ocf_virtual_machine, ("fence", "ipmi"): fence_ipmi,
           ("fence", "libvirt"): fence_libvirt, ("bin", "hasf-cib"): bin_hasf_cib}


def manifest():
    with open(os.path.join(REPO, "packaging", "executables.txt")) as handle:
        for line in handle:
            words = line.split("#", 1)[0].split()
            if words:
                yield words[0], words[1]


def plan(root):
    steps = []
    for kind, name in manifest():
        path = os.path.join(root, PLACES[kind].format(name))
        recipe = RECIPES.get((kind, name))
        if recipe is not None:
            steps.append(Step("%s %s (%s)" % (kind, name, recipe.__doc__.splitlines()[0]),
                              recipe, path))
    return steps
