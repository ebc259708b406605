"""qemu command-line facts shared by the lab's nodes (node.py) and batch guests (guest.py).

Why: every guest NIC needs a MAC unique on this machine (two guests on one
link with the same MAC never talk), host ports are picked free at run time
(guest links, BMCs, tgtd's portal), and a path inside a qemu option must
have its commas doubled or qemu reads the rest as options.
"""

import os
import socket
import threading

_macs_lock = threading.Lock()
_macs_used = set()


def unique_mac():
    with _macs_lock:
        while True:
            mac = "52:54:00:%02x:%02x:%02x" % tuple(os.urandom(3))
            if mac not in _macs_used:
                _macs_used.add(mac)
                return mac


def free_tcp_port():
    """A currently free TCP port on 127.0.0.1 (for lan_listen/lan_connect)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tcp_listening(port, host="127.0.0.1"):
    """Whether something listens on host:port, read from /proc/net/tcp (no connect:
    a qemu socket netdev would take a probe connection as its peer)."""
    want = "%s:%04X" % ("".join("%02X" % int(b) for b in reversed(host.split("."))), port)
    with open("/proc/net/tcp") as handle:
        for line in handle.readlines()[1:]:
            fields = line.split()
            if fields[1] == want and fields[3] == "0A":
                return True
    return False


def qemu_value(path):
    """A path as a qemu option value (commas doubled)."""
    return path.replace(",", ",,")


def free_udp_port():
    """A currently free UDP port on 127.0.0.1 (BMCs, connectionless guest links)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
