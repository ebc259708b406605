"""The lifecycle every test daemon helper shares.

`start()` returns self, `stop()` is idempotent and cleans up everything;
used as a context manager, a start that fails half-way is stopped before the
error propagates, so no daemon or namespace outlives a broken test.
"""

import os
import signal
import subprocess


def kill_group(proc, wait=5):
    """SIGKILL the process group a helper daemon leads, and reap it (bounded)."""
    if proc is None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        pass


class Service:
    def start(self):
        raise NotImplementedError

    def stop(self):
        raise NotImplementedError

    def release_namespace(self):
        """Drop this helper's namespace, or the whole network when it made its own."""
        if getattr(self, "_own_network", False) and self.network is not None:
            self.network.close()
            self.network = None
        elif self.ns is not None and self.network is not None:
            subprocess.run(["ip", "netns", "del", self.ns.name], timeout=10, capture_output=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
