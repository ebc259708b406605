"""Shared test infrastructure for hasf: real daemons in private namespaces.

Modules: waiting, netns, nsproc, pacemaker, libvirtd, ipmisim, sshd.
All of them need root (network/mount namespaces) except ``waiting``.
"""
