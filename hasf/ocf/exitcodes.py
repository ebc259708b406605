"""OCF exit codes (resource-agent API 1.1 plus Pacemaker's degraded codes)."""

from enum import IntEnum


class OCFExit(IntEnum):
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

    @property
    def ocf_name(self):
        return "OCF_" + self.name


SUCCESS = OCFExit.SUCCESS
NOT_RUNNING = OCFExit.NOT_RUNNING
DEGRADED = OCFExit.DEGRADED
