"""The hasf lab: the seed's scenario on one machine, and `make demo`.

One module per real thing it drives:

- the guest image every guest boots: image.py (the host's Debian archive
  and host tools: debian.py);
- a cluster node guest and its ssh control channel: node.py (noderunner.py
  runs inside it as PID 1); a batch guest (boot, run commands, power off):
  guest.py;
- BMCs, ipmi_sim on loopback: bmc.py (NodeBmc powers a node's qemu,
  FileBmc keeps a chassis in a file for the fence agent's step); or a node
  as a libvirt domain of the host, with the lab's sshd through which the
  nodes' fence_hasf_libvirt reaches that libvirtd: domain_power.py;
- the two-node cluster: cluster.py, configured from hasf-lab.toml (or
  hasf-lab-demo.toml, fencing with the demo device; hasf-lab-libvirt.toml,
  through libvirt; clusterlabs-lab.toml, ClusterLabs' agents for the
  failover benchmark), with the SAN's disk
  (san.py) and vm1 on the stores (vm1.py); one crash cycle and its
  timeline: crash.py; `make crash-test`, many cycles with the invariants
  the nodes' own witnesses check (invariants.py): crashtest.py;
- the SAN's target daemon: tgtd.py; libvirtd, the host's qemu:///system and
  private second instances: libvirtd.py, the latter in network namespaces
  (netns.py) and namespace hosts (nsproc.py);
- the scenario's storage path (hasf's SAN on tgtd, open-iscsi and OCFS2 in a
  guest): storage_path.py; two guests sharing one OCFS2 volume through
  OCFS2Membership: ocfs2_cluster.py;
- an OCF agent run the way pacemaker-execd runs it: ocfrun.py; a
  world-readable install of this checkout's hasf for guests and `nobody`:
  hasf_lib.py;
- what they all share: process.py (bounded waits, process groups, the
  Service lifecycle) and qemu.py (qemu facts, free ports).

demo.py is `make demo`: the crash test, then the per-agent steps of
steps.py.  Nothing here imports tests/; the tests and the benches import
these modules.
"""
