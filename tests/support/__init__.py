"""Shared test infrastructure for hasf: real daemons in private namespaces.

Modules: pacemaker, libvirtd, ipmisim, sshd, tgtd, guest, hungfs; the
namespaces and bounded waits under them are the lab's (lab.netns,
lab.nsproc, lab.process).  All of them need root.
"""
