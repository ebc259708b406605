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
    from lab.libvirtd import diskless_domain_xml, ensure_system_libvirtd, unique_domain_name

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
    from lab.bmc import FileBmc

    lines, ok = [], True
    with FileBmc(password="lab-secret") as bmc:
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
    from lab.libvirtd import diskless_domain_xml, ensure_system_libvirtd, unique_domain_name

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


LAB_IQN = "iqn.2006-06.com.example.hasf:san"


def ocf_iscsi_target(agent):
    """ocf-tester on iSCSITarget against a real tgtd (private control port, loopback portal)."""
    from lab.tgtd import Tgtd

    with Tgtd() as tgtd:
        result = sh(["ocf-tester", "-n", "san-target", "-o", "iqn=" + LAB_IQN,
                     "-o", "tgt_control_port=%d" % tgtd.control_port, agent], timeout=300)
    return result.returncode == 0, result.stdout.strip()


def ocf_iscsi_logical_unit(agent):
    """The seed's SAN: target + LUN 1 on a 64 MiB file, seen by libiscsi as an initiator."""
    from lab.tgtd import Tgtd

    work = world_readable_dir("hasf-lab-san-")
    disk = os.path.join(work, "lun1.img")
    with open(disk, "wb") as handle:
        handle.truncate(64 << 20)
    target = os.path.join(os.path.dirname(agent), "iSCSITarget")
    lines, ok = [], True
    with Tgtd() as tgtd:
        env = dict(os.environ, OCF_ROOT="/usr/lib/ocf", HA_RSCTMP=os.path.join(work, "rsc"),
                   OCF_RESKEY_tgt_control_port=str(tgtd.control_port),
                   OCF_RESKEY_iqn=LAB_IQN, OCF_RESKEY_target_iqn=LAB_IQN, OCF_RESKEY_lun="1",
                   OCF_RESKEY_path=disk, OCF_RESKEY_vendor_id="HASF")
        steps = ((target, "start", 0), (agent, "start", 0), (agent, "monitor", 0),
                 ("iscsi-ls", None, 0), (agent, "stop", 0), (agent, "monitor", 7),
                 (target, "stop", 0), (target, "monitor", 7))
        for program, action, expect in steps:
            if action is None:
                result = sh(["iscsi-ls", "-s", "iscsi://" + tgtd.portal], timeout=30)
                shown = " ".join(result.stdout.split())
                good = result.returncode == expect and "Lun:1" in shown
                lines.append("initiator sees: %s" % shown)
            else:
                result = sh([program, action], env=dict(env, OCF_RESOURCE_INSTANCE=os.path.
                                                        basename(program)), timeout=60)
                good = result.returncode == expect
                lines.append("%-16s %-7s rc=%d (want %d)" % (os.path.basename(program), action,
                                                             result.returncode, expect))
            ok &= good
    return ok, "\n".join(lines)


def ocf_filesystem(agent):
    """ocf-tester on Filesystem: ext4 on a loop device (its OCFS2 mount: the iscsi step)."""
    work = world_readable_dir("hasf-lab-fs-")
    image, mnt = os.path.join(work, "store.img"), os.path.join(work, "store")
    with open(image, "wb") as handle:
        handle.truncate(32 << 20)
    sh(["mkfs.ext4", "-q", "-F", image], timeout=60)
    device = sh(["losetup", "-f", "--show", image], timeout=30).stdout.strip()
    try:
        result = sh(["ocf-tester", "-n", "store", "-o", "device=" + device, "-o",
                     "directory=" + mnt, "-o", "fstype=ext4", agent], timeout=300,
                    env=dict(os.environ, HA_RSCTMP=os.path.join(work, "rsc")))
    finally:
        sh(["umount", mnt], timeout=30)
        sh(["losetup", "-d", device], timeout=30)
    return result.returncode == 0, "device %s\n%s" % (device, result.stdout.strip())


def ocf_iscsi(agent):
    """The storage path in a guest kernel: SAN -> open-iscsi login -> OCFS2 mounted -> stopped."""
    from lab import storage_path
    from lab.hasf_lib import hasf_lib
    from lab.image import guest_image

    agents_dir = os.path.dirname(agent)
    host_agents = {name: os.path.join(agents_dir, name)
                   for name in ("iSCSITarget", "iSCSILogicalUnit")}
    outcome = storage_path.run(guest_image(), world_readable_dir("hasf-lab-path-"),
                               host_agents, hasf_lib())
    text = "%s\nhost sees on the LUN's OCFS2: %s" % (
        outcome.table(), " ".join(line.split()[-1] for line in outcome.listing.splitlines()
                                  if "written-by" in line) or "nothing")
    return outcome.ok, text


def ocf_ocfs2_membership(agent):
    """Two guest nodes mount one OCFS2 volume through o2cb as OCFS2Membership registers it."""
    from lab import ocfs2_cluster
    from lab.hasf_lib import hasf_lib
    from lab.image import guest_image

    outcome = ocfs2_cluster.run(guest_image(), world_readable_dir("hasf-lab-o2-"), hasf_lib())
    problems = outcome.problems()
    return not problems, outcome.table() + "".join("\nPROBLEM " + p for p in problems)


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
           ("fence", "libvirt"): fence_libvirt, ("bin", "hasf-cib"): bin_hasf_cib,
           ("ocf", "iSCSITarget"): ocf_iscsi_target,
           ("ocf", "iSCSILogicalUnit"): ocf_iscsi_logical_unit,
           ("ocf", "Filesystem"): ocf_filesystem, ("ocf", "iscsi"): ocf_iscsi,
           ("ocf", "OCFS2Membership"): ocf_ocfs2_membership}


def manifest():
    """(kind, name) of every executable packaging/executables.txt lists."""
    from hasf.cib.agents import source_manifest

    return [(kind, name) for kind, name, _module, _function in source_manifest()]


def plan(root):
    steps = []
    for kind, name in manifest():
        path = os.path.join(root, PLACES[kind].format(name))
        recipe = RECIPES.get((kind, name))
        if recipe is not None:
            steps.append(Step("%s %s (%s)" % (kind, name, recipe.__doc__.splitlines()[0]),
                              recipe, path))
    return steps
