"""Fencing (issue 4): hasf's fence agents versus the ClusterLabs anchors, same peers.

1. `fence_hasf_ipmi -o status` vs `fence_ipmilan -o status` against one
   ipmi_sim BMC (lanplus, cipher 3), both fed the same stdin as
   pacemaker-fenced would: target <= 0.5x wall.  Also hasf forced onto
   ipmitool, to show where the time goes.
2. `reboot` of one diskless qemu domain on qemu:///system via
   `fence_hasf_libvirt` (destroy, verified off, start, verified on) vs
   cluster-glue `external/libvirt reset` (virsh destroy, sleep 2, virsh
   start): target <= 0.5x wall.  Both are timed on the same domain,
   alternately.
hasf runs from a regular (non-editable) install through the launcher
template `make install` uses (bench/common.py).
"""

import os

from common import launcher
from harness import Report, measure, timed
from lab.bmc import IpmiSim
from lab.libvirtd import diskless_domain_xml, ensure_system_libvirtd, unique_domain_name

PASSWORD = "bench-Pw-42"
GLUE_LIBVIRT = "/usr/lib/stonith/plugins/external/libvirt"


def _stdin(**params):
    return "".join("%s=%s\n" % (k, v) for k, v in params.items())


class FastBmc(IpmiSim):
    """ipmi_sim whose chassis power state is its own (a `startcmd` "machine"), so a
    status request is answered by the simulator itself as by a real BMC -- the
    test fixture's chassis_control is a Python script exec'd per request (~25 ms),
    which would dominate both sides of a status comparison.  Status only: this
    configuration does not accept power control."""

    prefix = "hasf-bench-bmc-"

    def __init__(self):
        super().__init__(password=PASSWORD)

    def conf_lines(self):
        return '  startcmd "/bin/sleep 1000000"\n  startnow true\n'


def bench_ipmi(report):
    agent = launcher("fence_hasf_ipmi", "hasf.stonith.ipmi", "fence_main")
    with FastBmc() as sim:
        text = _stdin(action="status", ipaddr="127.0.0.1", ipport=sim.port, login="admin",
                      passwd=PASSWORD, lanplus=1, cipher=3, port="node1", nodename="node1")
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
        ours = measure("fence_hasf_ipmi status", [agent], env, runs=30, stdin=text)
        via_tool = measure("fence_hasf_ipmi (ipmitool)", [agent], env, runs=30,
                           stdin=text + "ipmi_client=ipmitool\n")
        theirs = measure("fence_ipmilan status", ["/usr/sbin/fence_ipmilan"], env, runs=30,
                         stdin=text)
        ipmitool = measure("ipmitool power status", ["ipmitool", "-I", "lanplus", "-C", "3",
                                                     "-H", "127.0.0.1", "-p", str(sim.port),
                                                     "-U", "admin", "-E", "power", "status"],
                           dict(env, IPMI_PASSWORD=PASSWORD), runs=30)
    if ours.rcs != [0] or theirs.rcs != [0] or via_tool.rcs != [0]:
        raise RuntimeError("status failed: hasf rc %s / %s, fence_ipmilan rc %s"
                           % (ours.rcs, via_tool.rcs, theirs.rcs))
    report.compare("ipmi: -o status (ipmi_sim)", ours, theirs, target=0.5)
    report.compare("ipmi: -o status, ipmi_client=ipmitool", via_tool, theirs)
    report.note("ipmitool alone: %.1f ms wall (most of it parsing the IANA enterprise-numbers "
                "file); hasf's default client is its built-in RMCP+ one" % (ipmitool.wall * 1000))


def bench_libvirt(report):
    import libvirt

    ensure_system_libvirtd()
    agent = launcher("fence_hasf_libvirt", "hasf.stonith.libvirt", "fence_main")
    conn = libvirt.open("qemu:///system")
    name = unique_domain_name("hasffence-bench")
    dom = conn.defineXML(diskless_domain_xml(name))
    try:
        dom.create()
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
        text = _stdin(action="reboot", port="node1", nodename="node1", uri="qemu:///system",
                      host_map="node1:%s" % name, stonith_status_sleep=0.1)
        glue_env = dict(env, hostlist="node1:%s" % name, hypervisor_uri="qemu:///system",
                        PATH="/usr/share/cluster-glue:" + env["PATH"], HA_LOGTAG="bench")
        ours = measure("fence_hasf_libvirt reboot", [agent], env, runs=7, warmup=1, stdin=text)
        theirs = measure("external/libvirt reset", [GLUE_LIBVIRT, "reset", "node1"], glue_env,
                         runs=7, warmup=1)

        def destroy_create():
            dom.destroy()
            dom.create()
        floor = timed("libvirt destroy+create", destroy_create, runs=5)
        if ours.rcs != [0] or theirs.rcs != [0]:
            raise RuntimeError("reboot failed: hasf rc %s, external/libvirt rc %s"
                               % (ours.rcs, theirs.rcs))
        report.compare("libvirt: reboot a qemu domain", ours, theirs, target=0.5)
        report.note("floor: libvirt destroy + create alone, in-process: %.0f ms (destroy waits "
                    "until qemu's pid is gone and reaped: the lab's libvirtd runs under tini -s for that)"
                    % (floor.wall * 1000))
        report.note("external/libvirt adds a fixed 2 s sleep and never verifies off; hasf adds "
                    "only its status polls")
    finally:
        dom = conn.lookupByName(name)
        if dom.isActive():
            dom.destroy()
        dom.undefine()
        conn.close()


def run():
    report = Report("stonith: fence_hasf_* vs fence_ipmilan / external/libvirt")
    bench_ipmi(report)
    if os.path.exists(GLUE_LIBVIRT):
        bench_libvirt(report)
    else:
        report.note("cluster-glue external/libvirt not installed: libvirt row skipped")
    return report
