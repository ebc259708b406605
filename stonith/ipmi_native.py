"""A small native IPMI 2.0 (RMCP+) client: just enough to fence.

Why it exists: a fence agent is exec'd per call, and `ipmitool` spends most
of its ~25 ms parsing the 4.7 MB IANA enterprise-numbers file at every
start; pyghmi spends ~90 ms importing itself and `cryptography`.  This
client uses only the standard library (socket, hmac, hashlib) plus OpenSSL's
libcrypto through ctypes for AES-CBC-128, and costs a few milliseconds.

Scope (everything else goes through ipmitool, see hasf.stonith.ipmi):
- lanplus only; cipher suites 1, 2, 3: authentication RAKP-HMAC-SHA1,
  integrity none / HMAC-SHA1-96, confidentiality none / AES-CBC-128 (the
  SHA-256 code paths exist but suites 15-17 are routed to ipmitool: ipmi_sim
  does not offer them, so they are untested);
- Open Session, RAKP 1-4 (the BMC's RAKP 2 and RAKP 4 codes are verified:
  a wrong password or an impostor BMC is an AuthError), Set Session
  Privilege Level, Get Chassis Status, Chassis Control (power up/down),
  Close Session;
- every response is integrity-checked and decrypted; sequence numbers and
  request tags are matched; each request is retried within a timeout;
- bounded by the caller's deadline, not only at connect: a session lives
  across the engine's status polls, each with its own deadline (`deadline`
  is set per call), and every request's wait is min(per-try timeout, what
  is left of it) -- a BMC that stops answering mid-session costs at most
  the remaining time, not (retries + 1) x timeout per request.  The BMC's
  name is resolved within the deadline too: a numeric address without any
  lookup, a name by getaddrinfo in a helper thread (hasf.bounded; glibc's
  resolver has no timeout of its own the caller could set).

The password is used as the HMAC key in memory only; it is never sent.
"""

import hashlib
import hmac
import _socket  # the C module: socket.py pulls in enum and selectors (~5 ms per exec)
import os
import struct
import time

from hasf import bounded
from hasf.stonith.errors import AuthError, DeviceError

# cipher suite -> (authentication, integrity, confidentiality) algorithm numbers
# (only the suites verified against a real BMC simulator; SHA-256 suites 15-17 go
# through ipmitool until one is available to test them)
CIPHER_SUITES = {1: (1, 0, 0), 2: (1, 1, 0), 3: (1, 1, 1)}
PRIVILEGES = {"callback": 1, "user": 2, "operator": 3, "administrator": 4}
_RMCP = b"\x06\x00\xff\x07"
_BMC, _SWID = 0x20, 0x81
PAYLOAD_IPMI, OPEN_REQ, OPEN_RSP, RAKP1, RAKP2, RAKP3, RAKP4 = 0x00, 0x10, 0x11, 0x12, 0x13, \
    0x14, 0x15
RAKP_ERRORS = {0x01: "insufficient resources", 0x02: "invalid session id",
               0x0d: "unauthorized name", 0x0e: "unauthorized GUID",
               0x0f: "invalid integrity check value", 0x12: "illegal parameter",
               0x09: "invalid role", 0x0a: "unauthorized role or privilege level",
               0x11: "no matching cipher suite"}


class _AES:
    """AES-128-CBC without padding through libcrypto (loaded on first use)."""

    _lib = None

    @classmethod
    def lib(cls):
        if cls._lib is None:
            import ctypes

            for name in ("libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so"):
                try:
                    lib = ctypes.CDLL(name)
                    break
                except OSError:
                    continue
            else:
                raise DeviceError("libcrypto (OpenSSL) is needed for AES; not found")
            lib.EVP_CIPHER_CTX_new.restype = ctypes.c_void_p
            lib.EVP_aes_128_cbc.restype = ctypes.c_void_p
            for fn in ("EVP_CipherInit_ex", "EVP_CipherUpdate", "EVP_CIPHER_CTX_set_padding",
                       "EVP_CipherFinal_ex", "EVP_CIPHER_CTX_free"):
                getattr(lib, fn).restype = ctypes.c_int if fn != "EVP_CIPHER_CTX_free" else None
            cls._lib = (lib, ctypes)
        return cls._lib

    @classmethod
    def run(cls, key, iv, data, encrypt):
        lib, ctypes = cls.lib()
        ctx = ctypes.c_void_p(lib.EVP_CIPHER_CTX_new())
        try:
            ok = lib.EVP_CipherInit_ex(ctx, ctypes.c_void_p(lib.EVP_aes_128_cbc()), None,
                                       key, iv, 1 if encrypt else 0)
            lib.EVP_CIPHER_CTX_set_padding(ctx, 0)
            out = ctypes.create_string_buffer(len(data) + 32)
            size = ctypes.c_int(0)
            ok = ok and lib.EVP_CipherUpdate(ctx, out, ctypes.byref(size), data, len(data))
            if not ok:
                raise DeviceError("AES failed")
            return out.raw[:size.value]
        finally:
            lib.EVP_CIPHER_CTX_free(ctx)


def _checksum(data):
    return (-sum(data)) & 0xff


class Session:
    """One authenticated RMCP+ session with a BMC (a context manager)."""

    def __init__(self, host, port, username, password, cipher=3, privilege="administrator",
                 timeout=2.0, retries=2, clock=time.monotonic, deadline=None):
        if cipher not in CIPHER_SUITES:
            raise DeviceError("cipher suite %s is not supported natively" % cipher)
        self.auth_alg, self.integ_alg, self.conf_alg = CIPHER_SUITES[cipher]
        self.digest = hashlib.sha1 if self.auth_alg == 1 else hashlib.sha256
        self.host, self.port = host, port
        self.username = (username or "").encode()
        self.password = (password or "").encode()
        self.privilege = PRIVILEGES[privilege]
        self.timeout, self.retries, self.clock = timeout, max(1, retries), clock
        #: hasf.deadline.Deadline of the current call (None: per-try timeouts only)
        self.deadline = deadline
        self.sock = None
        self.console_sid = struct.unpack("<I", os.urandom(4))[0] | 1
        self.bmc_sid = 0
        self.seq = 0
        self.rq_seq = 0
        self.k1 = self.k2 = None
        self.open = False

    # -- transport --------------------------------------------------------------------
    def _left(self):
        return float("inf") if self.deadline is None else self.deadline.remaining()

    def _resolve(self):
        """(family, sockaddr) of the BMC, found within the deadline."""
        try:    # a numeric address: no lookup at all
            return _socket.getaddrinfo(self.host, self.port, 0, _socket.SOCK_DGRAM, 0,
                                       _socket.AI_NUMERICHOST)[0]
        except _socket.gaierror:
            pass
        left = self._left()
        if left <= 0:
            raise DeviceError("no time left to resolve BMC %s" % self.host)
        try:
            return bounded.call(_socket.getaddrinfo, (self.host, self.port, 0,
                                                      _socket.SOCK_DGRAM),
                                None if left == float("inf") else left,
                                "resolving BMC %s" % self.host)[0]
        except bounded.TimedOut:
            raise DeviceError("resolving BMC name %s did not finish within %.1fs"
                              % (self.host, left)) from None
        except _socket.gaierror as exc:
            raise DeviceError("cannot resolve BMC %s: %s" % (self.host, exc)) from None

    def _exchange(self, packet, accept):
        """Send packet, return the first reply accept() takes (retrying on silence), all
        within the deadline."""
        if self.sock is None:
            info = self._resolve()
            self.sock = _socket.socket(info[0], _socket.SOCK_DGRAM)
            try:
                self.sock.connect(info[4])
            except OSError as exc:
                raise DeviceError("BMC %s: %s" % (self.host, exc.strerror)) from None
        for _attempt in range(self.retries + 1):
            budget = min(self.timeout, self._left())
            if budget <= 0:
                raise DeviceError("BMC %s:%d did not answer before the deadline"
                                  % (self.host, self.port))
            try:
                self.sock.send(packet)
            except OSError as exc:
                raise DeviceError("BMC %s: %s" % (self.host, exc.strerror)) from None
            end = self.clock() + budget
            while True:
                left = end - self.clock()
                if left <= 0:
                    break
                self.sock.settimeout(left)
                try:
                    data = self.sock.recv(1024)
                except _socket.timeout:
                    break
                except OSError as exc:  # ICMP port unreachable and the like
                    raise DeviceError("BMC %s: %s" % (self.host, exc.strerror)) from None
                reply = accept(data)
                if reply is not None:
                    return reply
        raise DeviceError("BMC %s:%d did not answer" % (self.host, self.port))

    def _wrap(self, ptype, payload, sid, seq, secure):
        if secure and self.conf_alg:
            pad = (16 - (len(payload) + 1) % 16) % 16
            iv = os.urandom(16)
            payload = iv + _AES.run(self.k2[:16], iv,
                                    payload + bytes(range(1, pad + 1)) + bytes([pad]), True)
            ptype |= 0x80
        if secure and self.integ_alg:
            ptype |= 0x40
        head = struct.pack("<BBIIH", 0x06, ptype, sid, seq, len(payload))
        body = head + payload
        if secure and self.integ_alg:
            pad = (4 - (len(body) + 2) % 4) % 4
            body += b"\xff" * pad + bytes([pad, 0x07])
            body += hmac.new(self.k1, body, self.digest).digest()[:self._icv_len()]
        return _RMCP + body

    def _icv_len(self):
        return 12 if self.integ_alg == 1 else 16

    def _unwrap(self, data, want_type):
        """Payload of a reply of payload type want_type, or None (not ours / not valid)."""
        if len(data) < 16 or data[:4] != _RMCP or data[4] != 0x06:
            return None
        ptype, sid, _seq, length = struct.unpack("<BIIH", data[5:16])
        if ptype & 0x3f != want_type:
            return None
        payload = data[16:16 + length]
        if len(payload) != length:
            return None
        if ptype & 0x40:
            if not self.integ_alg or self.k1 is None:
                return None
            icv = data[-self._icv_len():]
            want = hmac.new(self.k1, data[4:-self._icv_len()], self.digest).digest()
            if not hmac.compare_digest(icv, want[:self._icv_len()]):
                return None
        elif self.open and self.integ_alg:
            return None         # an unauthenticated reply inside an authenticated session
        if ptype & 0x80:
            if len(payload) < 32 or (len(payload) - 16) % 16:
                return None
            clear = _AES.run(self.k2[:16], payload[:16], payload[16:], False)
            payload = clear[:len(clear) - 1 - clear[-1]]
        elif self.open and self.conf_alg:
            return None
        if self.open and sid != self.console_sid:
            return None
        return payload

    # -- session set-up ----------------------------------------------------------------
    def _pre(self, ptype, payload, want):
        packet = self._wrap(ptype, payload, 0, 0, False)
        return self._exchange(packet, lambda data: self._unwrap(data, want))

    def connect(self):
        tag = 0
        algs = b"".join(struct.pack("BBBBBBBB", kind, 0, 0, 8, alg, 0, 0, 0)
                        for kind, alg in enumerate((self.auth_alg, self.integ_alg,
                                                    self.conf_alg)))
        rsp = self._pre(OPEN_REQ, struct.pack("<BBHI", tag, self.privilege, 0, self.console_sid)
                        + algs, OPEN_RSP)
        if len(rsp) < 2 or rsp[1] != 0:
            raise self._rakp_error("open session", rsp)
        if len(rsp) < 12 or struct.unpack("<I", rsp[4:8])[0] != self.console_sid:
            raise DeviceError("BMC answered open session for another session")
        self.bmc_sid = struct.unpack("<I", rsp[8:12])[0]
        rm = os.urandom(16)
        role = self.privilege | 0x10           # name-only lookup, as ipmitool does
        user = self.username
        rsp = self._pre(RAKP1, struct.pack("<B3xI", tag, self.bmc_sid) + rm
                        + bytes([role, 0, 0, len(user)]) + user, RAKP2)
        if len(rsp) < 2 or rsp[1] != 0:
            raise self._rakp_error("RAKP 2", rsp)
        size = self.digest().digest_size
        if len(rsp) < 40 + size:
            raise DeviceError("short RAKP 2 message from BMC")
        rc, guid, code = rsp[8:24], rsp[24:40], rsp[40:40 + size]
        sidm = struct.pack("<I", self.console_sid)
        sidc = struct.pack("<I", self.bmc_sid)
        tail = bytes([role, len(user)]) + user
        expect = hmac.new(self.password, sidm + sidc + rm + rc + guid + tail, self.digest)
        if not hmac.compare_digest(code, expect.digest()):
            raise AuthError("BMC refused the login (wrong user name or password)")
        sik = hmac.new(self.password, rm + rc + tail, self.digest).digest()
        self.k1 = hmac.new(sik, b"\x01" * size, self.digest).digest()
        self.k2 = hmac.new(sik, b"\x02" * size, self.digest).digest()
        code = hmac.new(self.password, rc + sidm + tail, self.digest).digest()
        rsp = self._pre(RAKP3, struct.pack("<BBHI", tag, 0, 0, self.bmc_sid) + code, RAKP4)
        if len(rsp) < 2 or rsp[1] != 0:
            raise self._rakp_error("RAKP 4", rsp)
        icv_len = 12 if self.auth_alg == 1 else 16
        icv = hmac.new(sik, rm + sidc + guid, self.digest).digest()[:icv_len]
        if not hmac.compare_digest(rsp[8:8 + icv_len], icv):
            raise AuthError("BMC failed to prove the session key (RAKP 4)")
        self.open = True
        self.command(0x06, 0x3b, bytes([self.privilege]))      # set session privilege
        return self

    def _rakp_error(self, step, rsp):
        status = rsp[1] if len(rsp) > 1 else None
        text = RAKP_ERRORS.get(status, "status 0x%02x" % (status or 0))
        cls = AuthError if status in (0x0d, 0x09, 0x0a, 0x0f, 0x0e) else DeviceError
        return cls("BMC refused %s: %s" % (step, text))

    # -- IPMI commands -------------------------------------------------------------------
    def command(self, netfn, cmd, data=b""):
        """Send one IPMI request; return the response data after a zero completion code."""
        self.seq = (self.seq + 1) & 0xffffffff or 1
        self.rq_seq = (self.rq_seq + 1) & 0x3f
        head = bytes([_BMC, netfn << 2])
        body = bytes([_SWID, self.rq_seq << 2, cmd]) + data
        msg = head + bytes([_checksum(head)]) + body + bytes([_checksum(body)])
        packet = self._wrap(PAYLOAD_IPMI, msg, self.bmc_sid, self.seq, True)
        rq_seq = self.rq_seq

        def accept(raw):
            rsp = self._unwrap(raw, PAYLOAD_IPMI)
            if rsp is None or len(rsp) < 8:
                return None
            if rsp[1] >> 2 != netfn + 1 or rsp[4] >> 2 != rq_seq or rsp[5] != cmd:
                return None
            return rsp
        rsp = self._exchange(packet, accept)
        if rsp[6] != 0:
            raise DeviceError("BMC answered command 0x%02x/0x%02x with completion code 0x%02x"
                              % (netfn, cmd, rsp[6]))
        return rsp[7:-1]

    def power_state(self):
        data = self.command(0x00, 0x01)            # Get Chassis Status
        if not data:
            raise DeviceError("empty chassis status from BMC")
        return bool(data[0] & 0x01)

    def chassis_control(self, on):
        self.command(0x00, 0x02, bytes([0x01 if on else 0x00]))

    def close(self):
        if self.open:
            try:
                self.retries = 0
                self.timeout = min(self.timeout, 0.5)    # a polite goodbye, not a wait
                self.command(0x06, 0x3c, struct.pack("<I", self.bmc_sid))
            except DeviceError:
                pass
            self.open = False
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc):
        self.close()
