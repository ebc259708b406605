"""VirtualMachine (hasf) versus heartbeat/VirtualDomain on the same running qemu domain.

Both agents get hypervisor=qemu:///system and the same diskless 64 MiB TCG
domain XML (it sits in the BIOS).  Timed side by side in one run:
`monitor` of the running domain (target: <= 0.25x VirtualDomain's wall AND
cpu time), `meta-data`, and one `start`/`stop` each (stop with force_stop,
since the BIOS ignores ACPI and a graceful stop would only time the wait).
"""

import os
import shutil
import subprocess
import uuid
from xml.dom import minidom

from common import launcher, ocf_env, scratch_dir
from harness import Report, measure, run_once

VIRTUAL_DOMAIN = "/usr/lib/ocf/resource.d/heartbeat/VirtualDomain"
URI = "qemu:///system"


def _cleanup(name):
    for verb in ("destroy", "undefine"):
        subprocess.run(["virsh", "-c", URI, verb, name], capture_output=True, timeout=60)


def _single(label, argv, env):
    wall, cpu, rc = run_once(argv, env)

    class One:
        pass
    one = One()
    one.label, one.wall, one.cpu, one.rcs = label, wall, cpu, [rc]
    return one


def run():
    from lab.libvirtd import diskless_domain_xml, ensure_system_libvirtd

    ensure_system_libvirtd()
    report = Report("VirtualMachine (hasf) vs heartbeat/VirtualDomain, qemu:///system")
    agent = launcher("VirtualMachine", "hasf.agents.virtual_machine")
    work = scratch_dir("hasf-bench-vm-")
    name = "hasfvm-bench-%s" % uuid.uuid4().hex[:8]
    config = os.path.join(work, name + ".xml")
    with open(config, "w") as handle:
        # one element per line: VirtualDomain greps the <name> line out of the file
        handle.write(minidom.parseString(diskless_domain_xml(name)).toprettyxml(indent="  "))
    common = {"config": config, "hypervisor": URI, "force_stop": "true"}
    env_h = ocf_env(**common)
    env_h["HA_RSCTMP"] = os.path.join(work, "rsc-h")
    env_v = ocf_env(**common)
    env_v["HA_RSCTMP"] = os.path.join(work, "rsc-v")
    env_v["OCF_RESOURCE_INSTANCE"] = "bench-vd"
    try:
        for env in (env_h, env_v):
            env["OCF_RESKEY_CRM_meta_timeout"] = "90000"
        ours = measure("VirtualMachine meta-data", [agent, "meta-data"], env_h, runs=20)
        theirs = measure("VirtualDomain meta-data", [VIRTUAL_DOMAIN, "meta-data"], env_v, runs=20)
        report.compare("meta-data", ours, theirs)

        # start/stop: one cold run each, alternating the agents on the same domain
        starts_h, stops_h, starts_v, stops_v = [], [], [], []
        for _ in range(5):
            starts_h.append(_single("VirtualMachine start", [agent, "start"], env_h))
            stops_h.append(_single("VirtualMachine stop", [agent, "stop"], env_h))
            starts_v.append(_single("VirtualDomain start", [VIRTUAL_DOMAIN, "start"], env_v))
            stops_v.append(_single("VirtualDomain stop", [VIRTUAL_DOMAIN, "stop"], env_v))
        for what, ours_l, theirs_l in (("start", starts_h, starts_v), ("stop (force)", stops_h,
                                                                       stops_v)):
            report.compare(what, _median(ours_l), _median(theirs_l))

        # monitor of the running domain: both agents watch the same one
        started = run_once([agent, "start"], env_h)
        if started[2] != 0:
            raise RuntimeError("VirtualMachine start failed (rc %d)" % started[2])
        ours = measure("VirtualMachine monitor", [agent, "monitor"], env_h, runs=30)
        theirs = measure("VirtualDomain monitor", [VIRTUAL_DOMAIN, "monitor"], env_v, runs=30)
        if ours.rcs != [0] or theirs.rcs != [0]:
            report.note("unexpected monitor exit codes: hasf %s, VirtualDomain %s"
                        % (ours.rcs, theirs.rcs))
        report.compare("monitor (running)", ours, theirs, target=0.25)
        _cpu_verdict(report, ours, theirs)
        report.note("no cluster above: VirtualDomain's crm_resource calls fail fast; "
                    "the next row runs both inside a live Pacemaker node")
        _in_cluster(report, agent, env_h, env_v)
        run_once([agent, "stop"], env_h)
        ours = measure("VirtualMachine probe", [agent, "monitor"],
                       dict(env_h, OCF_RESKEY_CRM_meta_interval="0"), runs=20)
        theirs = measure("VirtualDomain probe", [VIRTUAL_DOMAIN, "monitor"],
                         dict(env_v, OCF_RESKEY_CRM_meta_interval="0"), runs=20)
        report.compare("probe (stopped; no target)", ours, theirs)
    finally:
        _cleanup(name)
        shutil.rmtree(work, ignore_errors=True)
    return report


def _in_cluster(report, agent, env_h, env_v):
    """Both monitors run inside a one-node Pacemaker cluster (nsenter into the node), where
    VirtualDomain's utilization updates (crm_resource) talk to a live CIB, as in production."""
    from support.pacemaker import PacemakerCluster

    # the node's /run is private: reach the host's libvirtd socket through our own root
    uri = "qemu+unix:///system?socket=/proc/%d/root/run/libvirt/libvirt-sock" % os.getpid()
    with PacemakerCluster(["node1"]) as cluster:
        cluster.wait_online(60)
        host = cluster.nodes["node1"].host
        env_h = dict(env_h, OCF_RESKEY_hypervisor=uri)
        env_v = dict(env_v, OCF_RESKEY_hypervisor=uri)
        ours = measure("VirtualMachine monitor", host.argv([agent, "monitor"]), env_h, runs=20)
        theirs = measure("VirtualDomain monitor", host.argv([VIRTUAL_DOMAIN, "monitor"]), env_v,
                         runs=20)
    report.compare("monitor (running, in a cluster node)", ours, theirs, target=0.25)
    _cpu_verdict(report, ours, theirs)


def _cpu_verdict(report, ours, theirs, target=0.25):
    """Report.compare judges wall time; the issue's target holds for CPU time too."""
    ratio = ours.cpu / theirs.cpu if theirs.cpu else float("inf")
    report.note("cpu ratio %.2fx: %s (<= %.2fx)" % (
        ratio, "meets target" if ratio <= target else "MISSES target", target))


def _median(samples):
    samples = sorted(samples, key=lambda s: s.wall)
    return samples[len(samples) // 2]
