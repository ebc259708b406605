"""Bounded polling shared by every helper in ``support`` (lives in lab.process).

Why: daemons (corosync, pacemaker, libvirtd, ipmi_sim, sshd) become ready
asynchronously; every wait in the test infrastructure must be bounded so a
broken daemon fails a test instead of hanging the whole run.
"""

from lab.process import WaitTimeout, wait_until

__all__ = ["WaitTimeout", "wait_until"]
