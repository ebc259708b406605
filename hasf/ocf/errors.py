"""Errors that carry their OCF exit code.

A handler raises one of these; the dispatcher (hasf.ocf.main) is the single
place that writes the `ocf-exit-reason:` line and exits with the code.
"""

from hasf.errors import HasfError
from hasf.ocf import exitcodes as rc


class OCFError(HasfError):
    """Base: an operation failed with `exit_code`; the message is the exit reason."""

    exit_code = rc.ERR_GENERIC


class GenericError(OCFError):
    """Something went wrong that may go right on a retry here (soft error)."""


class InvalidArgs(OCFError):
    """The configuration is not valid on this node (Pacemaker bans it here)."""

    exit_code = rc.ERR_ARGS


class Unimplemented(OCFError):
    exit_code = rc.ERR_UNIMPLEMENTED


class PermissionDenied(OCFError):
    exit_code = rc.ERR_PERM


class NotInstalled(OCFError):
    """Required software is missing on this node."""

    exit_code = rc.ERR_INSTALLED


class NotConfigured(OCFError):
    """The parameters are wrong everywhere (Pacemaker stops the resource cluster-wide)."""

    exit_code = rc.ERR_CONFIGURED


class ConfigurationProblems(NotConfigured):
    """Every parameter problem found, reported in one go."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class CannotTell(GenericError):
    """The state of the resource cannot be determined.

    Never answered as "not running": a wrong "stopped" lets two nodes write
    one disk.
    """
