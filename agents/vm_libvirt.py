"""The VirtualMachine agent's side of the one libvirt boundary (hasf.virt).

hasf.virt owns everything about talking to libvirtd: one connection per
agent run, every call bounded by the deadline (libvirt-python has no
timeout, and a hung libvirtd would block forever), and the one table that
classifies libvirt's error numbers.  This module only names the OCF errors
the agent's handlers understand for each kind of failure, and keeps the
names the agent has always imported from here (`Hypervisor`,
`LeanHypervisor`, `Unreachable`, `CallTimeout`, `BadURI`, the state
constants, `translate`, `call_bounded`, ...).  The fence device
(hasf.stonith.libvirt) is the other side, with fencing errors.

`Unreachable` (libvirtd down, hung, or the connection broke) is the one
error handlers catch on purpose: on a probe or a stop they fall back to
looking for the hypervisor process themselves (hasf.agents.vm_procs).
"""

from hasf import virt
from hasf.ocf.errors import GenericError, NotConfigured, NotInstalled, PermissionDenied
from hasf.virt import (ACTIVE_STATES, BLOCKED, CRASHED, ERR, FROM_RPC, IGNORED,  # noqa: F401
                       INACTIVE_STATES, PAUSED, PMSUSPENDED, RUNNING, SHUTDOWN, SHUTOFF,
                       STATE_NAMES, TRANSIENT_PAUSE_REASONS, LeanError, connection_lost,
                       error_code, state_name)


class Unreachable(GenericError):
    """libvirtd could not be reached (down, hung, or the connection broke)."""


class BadURI(NotConfigured):
    """libvirtd answered, but refused the URI (wrong path, unknown driver option)."""


class CallTimeout(Unreachable):
    """A libvirt call did not return within its bound (libvirtd or qemu hung)."""


KINDS = virt.Kinds(unreachable=Unreachable, timeout=CallTimeout, bad_uri=BadURI,
                   not_installed=NotInstalled, denied=PermissionDenied, config=NotConfigured,
                   failed=GenericError)


def load_libvirt():
    """Import libvirt-python (NotInstalled if missing), its stderr error printer silenced."""
    return virt.load_libvirt(KINDS)


def translate(exc, what):
    """A libvirt error as the OCF error that tells the truth about it."""
    return virt.translate(exc, what, KINDS)


def call_bounded(func, args=(), timeout=None, what="libvirt call"):
    """func(*args) bounded by `timeout`; CallTimeout when libvirtd hangs."""
    return virt.call_bounded(func, args, timeout, what, KINDS)


class Hypervisor(virt.Hypervisor):
    """One libvirt connection for one agent run, OCF errors."""

    kinds = KINDS


class LeanHypervisor(virt.LeanHypervisor):
    """The depth-0 monitor's Hypervisor (libvirtmod only), OCF errors."""

    kinds = KINDS
