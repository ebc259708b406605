"""hasf.isolated: storage access in a forked child, bounded, with errno kept.

The hung filesystem is bindfs with its daemon stopped (tests/support/hungfs.py), standing
in for hung NFS/iSCSI/OCFS2-in-recovery."""

import errno
import os
import subprocess
import time

import pytest

from hasf import isolated
from support.hungfs import HungFuse


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def test_value_and_errno_come_back(workdir):
    path = os.path.join(workdir, "f")
    with open(path, "wb") as handle:
        handle.write(b"domain")
    assert isolated.call(_read, (path,), 5) == b"domain"
    with pytest.raises(OSError) as missing:
        isolated.call(_read, (path + ".gone",), 5)
    assert missing.value.errno == errno.ENOENT  # absent stays distinguishable
    with pytest.raises(OSError) as isdir:
        isolated.call(_read, (workdir,), 5)
    assert isdir.value.errno == errno.EISDIR  # ...from every other error


def test_other_exceptions_are_typed_not_raw():
    with pytest.raises(isolated.ChildFailed, match="ZeroDivisionError"):
        isolated.call(lambda: 1 // 0, (), 5)


def test_a_read_on_a_hung_filesystem_is_abandoned_in_time(workdir):
    """Mutation: call the function in-process (return func(*args)) -> this test hangs
    until the filesystem is thawed, far past the 1 s bound."""
    with HungFuse(workdir) as fs:
        with open(fs.path("domain.xml"), "w") as handle:
            handle.write("<domain/>")
        fs.freeze()
        began = time.monotonic()
        with pytest.raises(isolated.ChildTimedOut, match="within 1.0s"):
            isolated.call(_read, (fs.path("domain.xml"),), 1.0)
        assert 1.0 <= time.monotonic() - began < 1.5  # it waited its bound, no more


def test_hungfs_really_hangs_a_stat(workdir):
    """The stand-in is only worth something if a plain stat really blocks on it."""
    with HungFuse(workdir) as fs:
        open(fs.path("x"), "w").close()
        fs.freeze()
        proc = subprocess.Popen(["stat", fs.path("x")], stdout=subprocess.DEVNULL)
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                proc.wait(1.0)
        finally:
            fs.thaw()
            proc.wait(10)
