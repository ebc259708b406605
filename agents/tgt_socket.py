"""tgtd's management socket, asked directly: the monitor's read of tgtd without a tgtadm exec.

Why: every iSCSITarget and iSCSILogicalUnit monitor needs tgtd's report
(`tgtadm --op show --mode target`), and starting tgtadm (fork, exec, the
dynamic loader) is most of what such a monitor costs.  tgtadm itself only
connects to the unix socket /run/tgtd/socket.<control port>, sends one
fixed-size request and prints the text tgtd answers.  This module sends that
one read-only request and returns the same text, so hasf.agents.tgt's
parse_targets stays the one model of the report.  Changes keep going through
tgtadm (hasf.agents.tgt), which is what tgt supports as its interface.

The protocol (tgt's usr/tgtadm.h and usr/mgmt.c; the bytes were checked
against Debian 12's tgt 1.0.85 with strace):

- request: struct tgtadm_req, 120 bytes in host byte order -- mode, op,
  lld[64], len, tid, sid, lun, cid, host_no, device_type, ac_dir, pack,
  force.  len is the request's full length; 120 says no parameter text
  follows, and tgtd runs the request as soon as those bytes arrived.
  tgtadm sends tid -1 and lun ~0 for "all"; so does this module.
- response: struct tgtadm_rsp {err, len}: err 0 or a tgtadm_err number,
  len counting the 8 header bytes; then len - 8 bytes of NUL-terminated
  text (none when tgtd has no targets), after which tgtd closes the
  connection.
- tgtd serves root only (SO_PEERCRED uid and gid 0), as for tgtadm.

Fail closed: no tgtd behind the socket (nothing listening, no socket file)
is `TgtdUnreachable`, for the caller to decide with tgtd's lock whether
tgtd provably does not run; an answer that is late, short, refused or not
the report tgtadm would print is `TgtdSocketError`, a CannotTell -- never an
empty report that would read as "no such target".

The socket comes from `_socket`, the C module behind `socket`: importing
`socket` costs ~12 ms per exec (enum, selectors), `_socket` well under 1 ms,
and this runs in every monitor.
"""

import struct

import _socket

from hasf.ocf.errors import CannotTell

SOCKET_DIR = "/run/tgtd"
#: enum tgtadm_mode MODE_TARGET, enum tgtadm_op OP_SHOW
MODE_TARGET, OP_SHOW = 1, 2
#: struct tgtadm_req: mode, op, lld[64], len, tid, sid, lun, cid, host_no, device_type,
#: ac_dir, pack, force -- 120 bytes with no padding
REQUEST = struct.Struct("=II64sIiQQIIIIII")
#: struct tgtadm_rsp: err, len
RESPONSE = struct.Struct("=II")
ALL_TIDS, ALL_LUNS = -1, (1 << 64) - 1
#: a report larger than this is not tgtd's (tgt's own ceiling for one answer is far lower
#: in practice: ~1 KiB per LUN)
MAX_REPORT = 64 << 20
#: tgtd answers in milliseconds; a monitor's own deadline is usually the tighter bound
CALL_TIMEOUT = 10.0
_TIMEOUT = getattr(_socket, "timeout", TimeoutError)


class TgtSocketError(CannotTell):
    """tgtd's management socket gave no usable answer: the state of tgtd is unknown."""


class TgtdUnreachable(TgtSocketError):
    """Nothing accepts on the socket: tgtd is gone -- or going, which its lock tells."""


def request(lld="iscsi"):
    """The bytes of `tgtadm --lld <lld> --op show --mode target`'s request."""
    return REQUEST.pack(MODE_TARGET, OP_SHOW, lld.encode("ascii"), REQUEST.size, ALL_TIDS, 0,
                        ALL_LUNS, 0, 0, 0, 0, 0, 0)


def show_targets(control_port=0, deadline=None, socket_dir=SOCKET_DIR):
    """The text `tgtadm -C <port> --lld iscsi --op show --mode target` prints.

    Bounded by `deadline` (hasf.deadline.Deadline; CALL_TIMEOUT at most)."""
    path = "%s/socket.%d" % (socket_dir, control_port)
    limit = CALL_TIMEOUT if deadline is None else deadline.bound(CALL_TIMEOUT)
    if limit <= 0:  # settimeout(0) would mean "non-blocking", not "no time"
        raise TgtSocketError("no time left to ask tgtd (control port %d)" % control_port)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(limit)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise TgtdUnreachable("nothing accepts on %s (%s)" % (path, exc.strerror)) from None
        try:
            sock.sendall(request())
            err, length = RESPONSE.unpack(_receive(sock, RESPONSE.size, path))
            if err:
                raise TgtSocketError("tgtd refused `--op show --mode target` on %s "
                                     "(tgtadm error %d)" % (path, err))
            if not RESPONSE.size <= length <= MAX_REPORT:
                raise TgtSocketError("tgtd on %s announced a %d-byte answer: not tgt's "
                                     "protocol" % (path, length))
            body = _receive(sock, length - RESPONSE.size, path)
        except _TIMEOUT:
            raise TgtSocketError("tgtd did not answer on %s within %.1fs" % (path, limit)) \
                from None
        except OSError as exc:
            raise TgtSocketError("talking to tgtd on %s failed: %s" % (path, exc)) from None
    finally:
        sock.close()
    return report_text(body, path)


def _receive(sock, count, path):
    """Exactly count bytes; an early end of the connection is a short answer, an error."""
    chunks, left = [], count
    while left:
        chunk = sock.recv(min(left, 1 << 16))
        if not chunk:
            raise TgtSocketError("tgtd closed %s after %d of %d bytes of its answer"
                                 % (path, count - left, count))
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def report_text(body, path="tgtd's socket"):
    """tgtd's answer as tgtadm prints it (up to its NUL), checked to be a target report.

    The check keeps a wrong peer from passing for an empty tgtd: tgtd's
    text is NUL-terminated, and every line is a "Target N: <iqn>" heading
    or indented under one.  A tgtd without targets answers with no text at all."""
    if not body:
        return ""
    text, nul, rest = body.partition(b"\0")
    if not nul or rest:
        raise TgtSocketError("tgtd's answer on %s is not one NUL-terminated text" % path)
    text = text.decode("utf-8", "replace")
    for line in text.splitlines():
        if not (line.startswith(" ") or _is_heading(line)):
            raise TgtSocketError("tgtd's answer on %s is not a target report: %r"
                                 % (path, line[:80]))
    if text and not text.endswith("\n"):
        raise TgtSocketError("tgtd's answer on %s ends mid-line" % path)
    return text


def _is_heading(line):
    number, colon, _ = line[len("Target "):].partition(":")
    return line.startswith("Target ") and colon == ":" and number.isdigit()
