"""The hasf lab: the seed's scenario on one machine, and `make demo`.

One module per real thing it drives: the guest image (image.py, with the
host's Debian archive in debian.py), a node guest and its ssh control
channel (node.py, noderunner.py runs inside it), the node's BMC (bmc.py,
ipmi_sim), the two-node cluster (cluster.py, configured from hasf-lab.toml)
and the crash test with its timeline (crash.py); process.py and qemu.py are
the bounded waits and qemu facts they share.  tests/support imports these;
nothing here imports tests/ (demo.py's per-agent steps in steps.py still
use the test rigs for libvirtd and tgtd, to move next).
"""
