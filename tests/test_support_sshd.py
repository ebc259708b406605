"""Proves support.sshd (and lab.netns / lab.process.wait_until underneath)."""

import os
import shutil
import subprocess
import time

import pytest

from lab import netns
from support.sshd import NamespaceSshd
from lab.process import WaitTimeout, wait_until

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)")


def test_wait_until():
    seen = []
    assert wait_until(lambda: seen.append(1) or len(seen) >= 3, 2, 0.01) is True
    t = time.monotonic()
    with pytest.raises(WaitTimeout):
        wait_until(lambda: False, 0.2, 0.05, "never")
    assert time.monotonic() - t < 1


@root_only
def test_network_names_addresses_cleanup():
    with netns.Network() as net:
        a, b = net.add_namespace(), net.add_namespace()
        for name in (net.bridge, a.name, a.veth_host, b.name):
            assert len(name) <= 15 and str(os.getpid()) in name
        assert a.address.startswith(net.prefix + ".") and a.address != b.address
        # b's kernel answers a TCP SYN to a closed port with RST: rc 111 = reachable
        probe = ("import socket,sys; s=socket.socket(); s.settimeout(2); "
                 "sys.exit(s.connect_ex((sys.argv[1], 9)))")
        r = a.run(["python3", "-I", "-c", probe, b.address], timeout=10)
        assert r.returncode == 111, r.stdout + r.stderr
        b.link_down()
        r = a.run(["python3", "-I", "-c", probe, b.address], timeout=10)
        assert r.returncode != 111
        with netns.Network() as other:           # a concurrent network: another /24
            assert other.prefix != net.prefix
        names = [a.name, b.name]
    out = netns.ip("netns", "list").stdout
    assert not any(n in out for n in names)
    assert net.bridge is None


@root_only
@pytest.mark.skipif(not shutil.which("sshd"), reason="openssh-server not installed")
def test_sshd_command_strict_keys_down_up():
    with NamespaceSshd() as s:
        r = s.ssh("hostname")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "sshnode"
        assert s.address in open(s.known_hosts).read()
        # strict host key checking really applies: an empty known_hosts fails
        argv = s.ssh_argv("true")
        argv[argv.index("UserKnownHostsFile=%s" % s.known_hosts)] = "UserKnownHostsFile=/dev/null"
        r = subprocess.run(argv, capture_output=True, text=True, timeout=15)
        assert r.returncode == 255 and "verification failed" in r.stderr

        s.down()
        t = time.monotonic()
        r = s.ssh("true", connect_timeout=1)
        assert r.returncode == 255 and time.monotonic() - t < 5
        s.up()
        assert s.ssh("echo", "back").stdout.strip() == "back"

        s.down("kill")
        r = s.ssh("true", connect_timeout=1)
        assert r.returncode == 255 and "refused" in r.stderr
        s.up()
        assert s.ssh("true").returncode == 0
        d = s.dir
    assert not os.path.exists(d)
