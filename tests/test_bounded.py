"""hasf.bounded: a library call that cannot time out is given up on at its bound."""

import threading
import time

import pytest

from hasf import bounded


def test_value_and_exception_pass_through():
    assert bounded.call(lambda a, b: a + b, (2, 3), 5) == 5
    with pytest.raises(KeyError):
        bounded.call({}.__getitem__, ("missing",), 5)


def test_a_hanging_call_is_abandoned_at_its_bound():
    release = threading.Event()
    start = time.monotonic()
    with pytest.raises(bounded.TimedOut) as info:
        bounded.call(release.wait, (30,), 0.3, "talking to a hung libvirtd")
    assert time.monotonic() - start < 2
    assert "talking to a hung libvirtd did not return within 0.3s" in str(info.value)
    release.set()
