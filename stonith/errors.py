"""Typed fencing errors.  Library code raises these; only the front ends
(fence agent, cluster-glue plugin) turn them into messages and exit codes.

Every message passes through secret redaction (HasfError does it), so a
password can never reach an exit message or a traceback through here.
"""

from hasf.errors import HasfError


class FenceError(HasfError):
    """Fencing did not (verifiably) succeed."""


class ConfigError(FenceError):
    """The device configuration is missing or wrong; `problems` lists every one."""

    def __init__(self, problems):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class UnknownTarget(FenceError):
    """The requested node is not controlled by this device."""


class DeviceError(FenceError):
    """The fencing device could not be reached or refused a request."""


class AuthError(DeviceError):
    """The device refused our credentials."""


class PowerTimeout(FenceError):
    """The target did not reach the requested power state within power_timeout."""


class StatusUnknown(DeviceError):
    """The device answered, but not with a power state we understand."""
