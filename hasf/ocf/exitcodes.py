"""OCF exit codes (resource-agent API 1.1 plus Pacemaker's degraded codes).

`OCFExit` is an IntEnum, but importing `enum` costs ~4 ms per process --
a third of what a whole monitor takes -- so the framework's hot path uses
the plain int constants below, and `OCFExit` is built on first use (PEP 562
module __getattr__).  Both compare equal: OCFExit.NOT_RUNNING == NOT_RUNNING == 7.
"""

SUCCESS = 0
ERR_GENERIC = 1
ERR_ARGS = 2
ERR_UNIMPLEMENTED = 3
ERR_PERM = 4
ERR_INSTALLED = 5
ERR_CONFIGURED = 6
NOT_RUNNING = 7
RUNNING_PROMOTED = 8
FAILED_PROMOTED = 9
DEGRADED = 190
DEGRADED_PROMOTED = 191

_CODES = (("SUCCESS", SUCCESS), ("ERR_GENERIC", ERR_GENERIC), ("ERR_ARGS", ERR_ARGS),
          ("ERR_UNIMPLEMENTED", ERR_UNIMPLEMENTED), ("ERR_PERM", ERR_PERM),
          ("ERR_INSTALLED", ERR_INSTALLED), ("ERR_CONFIGURED", ERR_CONFIGURED),
          ("NOT_RUNNING", NOT_RUNNING), ("RUNNING_PROMOTED", RUNNING_PROMOTED),
          ("FAILED_PROMOTED", FAILED_PROMOTED), ("DEGRADED", DEGRADED),
          ("DEGRADED_PROMOTED", DEGRADED_PROMOTED))
_NAMES = {code: name for name, code in _CODES}


def ocf_name(code):
    """"OCF_NOT_RUNNING" for 7, and so on; the number itself for unknown codes."""
    name = _NAMES.get(int(code))
    return "OCF_" + name if name else str(int(code))


def _build_enum():
    from enum import IntEnum

    members = IntEnum("OCFExit", _CODES, module=__name__)
    members.ocf_name = property(ocf_name)
    members.__doc__ = "OCF exit codes as an IntEnum (SUCCESS=0 ... DEGRADED_PROMOTED=191)."
    return members


def __getattr__(name):
    if name == "OCFExit":
        members = globals()["OCFExit"] = _build_enum()
        return members
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
