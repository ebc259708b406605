"""hasf.ocf: the framework every hasf OCF resource agent is written with.

Import what an agent needs from here; each name lives in a small module of
its own (exitcodes, errors, params, environment, log, metadata, agent, main).
"""

from hasf.ocf.agent import ResourceAgent
from hasf.ocf.errors import (CannotTell, ConfigurationProblems, GenericError, InvalidArgs,
                             NotConfigured, NotInstalled, OCFError, PermissionDenied,
                             Unimplemented)
from hasf.ocf.exitcodes import DEGRADED, NOT_RUNNING, SUCCESS
from hasf.ocf.main import main_for, run
from hasf.ocf.actions import Action
from hasf.ocf.params import (Boolean, Checked, Choice, Duration, Integer, Parameter, Path,
                             Refusals, String)

__all__ = [
    "Action", "Boolean", "CannotTell", "Checked", "Choice", "ConfigurationProblems", "DEGRADED",
    "Duration", "GenericError", "Integer", "InvalidArgs", "NOT_RUNNING", "NotConfigured",
    "NotInstalled", "OCFError", "OCFExit", "Parameter", "Path", "PermissionDenied",
    "Refusals", "ResourceAgent", "String", "SUCCESS", "Unimplemented", "main_for", "run",
]


def __getattr__(name):
    """OCFExit (an IntEnum) is built on first use: importing enum costs ~4 ms per exec."""
    if name == "OCFExit":
        from hasf.ocf import exitcodes

        return exitcodes.OCFExit
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
