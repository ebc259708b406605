"""Fence devices that cannot verify power: each one named in a warning.

Pacemaker treats a fence device's "done" as "that node no longer writes to
shared storage".  Some devices cannot know that: software fencing over ssh
(hasf's demo device, cluster-glue's ssh) cannot tell a node that is off from
one cut off by a partition, and some anchors report success without reading
the power state back.  A cluster on shared storage fenced only by such
devices can corrupt its data in the split-brain fencing exists to prevent,
so hasf-cib says so for every one, in a spec and in a CIB file alike.  The
table is small and explicit: a device hasf does not know is not guessed at.
"""

#: agent (type of a stonith primitive) -> why it cannot verify that a node is off
UNVERIFIED = {
    "fence_hasf_demo": "software fencing over ssh cannot verify power (an unreachable node "
                       "may be partitioned, not off); hasf's demo device, NOT for production",
    "external/hasf-demo": "software fencing over ssh cannot verify power (an unreachable node "
                          "may be partitioned, not off); hasf's demo device, NOT for production",
    "external/ssh": "cluster-glue's ssh plugin is for testing only: it reboots over ssh and "
                    "cannot verify power",
    "ssh": "cluster-glue's ssh plugin is for testing only: it reboots over ssh and cannot "
           "verify power",
    "null": "cluster-glue's null device fences nothing",
    "external/ipmi": "cluster-glue's external/ipmi never verifies off (use fence_hasf_ipmi "
                     "or fence_ipmilan)",
    "external/libvirt": "cluster-glue's external/libvirt resets without verifying off "
                        "(use fence_hasf_libvirt)",
    "suicide": "suicide fencing relies on the failed node killing itself",
}


def warn_unverified(root, problems):
    """Add a warning for every stonith primitive of a CIB tree whose agent cannot verify."""
    for element in root.iter("primitive"):
        if element.get("class") != "stonith":
            continue
        why = UNVERIFIED.get(element.get("type"))
        if why:
            problems.warn("fence device %s" % element.get("id"),
                          "%s cannot verify that a node is off: %s; use a power switch "
                          "(IPMI, a PDU, the hypervisor) on shared storage"
                          % (element.get("type"), why))
