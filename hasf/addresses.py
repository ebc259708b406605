"""Names and addresses agent parameters carry: IPv4/IPv6 addresses, networks, iSCSI names.

Checked by hand, not with the ipaddress or re modules: those cost every
monitor exec of an agent that declares such a parameter ~3 ms of imports.
"""


def is_ipv4(text):
    """A dotted-quad IPv4 address."""
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


def is_ip_network(text):
    """An IPv4/IPv6 address or CIDR, as tgt's --initiator-address takes it."""
    address, sep, prefix = text.strip("[]").partition("/")
    if sep and not (prefix.isdigit() and int(prefix) <= 128):
        return False
    if "." in address and ":" not in address:
        return is_ipv4(address)
    groups = address.split(":")
    return (2 < len(groups) <= 8 and address.count("::") <= 1 and
            all(len(g) <= 4 and all(c in "0123456789abcdefABCDEF" for c in g) for g in groups))


def is_iscsi_name(text):
    """An iSCSI name (RFC 3720 3.2.6): iqn.YYYY-MM.…, eui.<16 hex>, naa.<16|32 hex>."""
    lower = text.lower()
    if lower.startswith("iqn."):
        date = lower[4:11]
        return (len(lower) > 12 and len(date) == 7 and date[4] == "-"
                and date[:4].isdigit() and date[5:].isdigit() and lower[11] == "."
                and len(text) <= 223 and _name_chars(lower[12:]))
    if lower.startswith("eui."):
        return len(lower) == 20 and _hex(lower[4:])
    if lower.startswith("naa."):
        return len(lower) in (20, 36) and _hex(lower[4:])
    return False


def _hex(text):
    return all(c in "0123456789abcdef" for c in text)


def _name_chars(text):
    return bool(text) and all(c.isalnum() and c.isascii() or c in "-.:" for c in text)


def split_portal(text, default_port=None):
    """(host, port) of an iSCSI portal: 'host:port', '[v6]:port', or -- with default_port --
    'host', '[v6]' or a bare IPv6 address.  None when the text is not a portal."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else default_port
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:  # no port, or a bare IPv6 address (which has several colons)
        host, port = text, default_port
    if not host or port is None or not str(port).isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def format_portal(host, port):
    """host:port, with IPv6 addresses in brackets (as open-iscsi and sysfs readers show)."""
    return "[%s]:%d" % (host, int(port)) if ":" in host else "%s:%d" % (host, int(port))
