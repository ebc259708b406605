"""The lifecycle every test daemon helper shares (lab.process.Service, plus namespaces).

`start()` returns self, `stop()` is idempotent and cleans up everything;
used as a context manager, a start that fails half-way is stopped before the
error propagates, so no daemon or namespace outlives a broken test.
"""

import subprocess

from lab.process import Service as _LabService
from lab.process import kill_group

__all__ = ["Service", "kill_group"]


class Service(_LabService):
    def release_namespace(self):
        """Drop this helper's namespace, or the whole network when it made its own."""
        if getattr(self, "_own_network", False) and self.network is not None:
            self.network.close()
            self.network = None
        elif self.ns is not None and self.network is not None:
            subprocess.run(["ip", "netns", "del", self.ns.name], timeout=10, capture_output=True)
