"""hasf: High Availability Storage Foundation.

Pacemaker resource agents, fencing and CIB tools for virtual machines on
shared cluster storage.  Everything imports from this one namespace; the
sub-packages live in the repository's top-level folders (see setup.cfg).
"""

__version__ = "0.1.0"
