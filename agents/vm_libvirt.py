"""The libvirt boundary of the VirtualMachine agent.

Everything that talks to libvirtd goes through `Hypervisor`, which
- opens ONE connection per agent run, with a bound: libvirt-python has no
  connect or call timeout, and a hung libvirtd (accepting on its socket but
  never answering) would block forever; so every call runs in a daemon
  thread and the agent gives up at its deadline;
- translates `libvirt.libvirtError` into hasf's typed OCF errors right here,
  so no handler ever sees a libvirt exception and nothing is turned into a
  guessed "not running" by a broad except.

`Unreachable` (libvirtd down, hung, or the URI does not connect) is the one
error handlers catch on purpose: on a probe or a stop they fall back to
looking for the hypervisor process themselves (hasf.agents.vm_procs).
"""

import threading

from hasf.ocf.errors import (GenericError, NotConfigured, NotInstalled, OCFError,
                             PermissionDenied)

#: libvirt's virDomainState values, by number (libvirt.VIR_DOMAIN_*)
STATE_NAMES = {0: "no state", 1: "running", 2: "blocked", 3: "paused", 4: "in shutdown",
               5: "shut off", 6: "crashed", 7: "pmsuspended"}
RUNNING, BLOCKED, PAUSED, SHUTDOWN, SHUTOFF, CRASHED, PMSUSPENDED = 1, 2, 3, 4, 5, 6, 7
#: states in which the domain's hypervisor process exists: the VM is "active" here
ACTIVE_STATES = frozenset((RUNNING, BLOCKED, PAUSED, SHUTDOWN, PMSUSPENDED))
INACTIVE_STATES = frozenset((SHUTOFF, CRASHED))

# virErrorNumber names, resolved against the loaded libvirt module (see load_libvirt)
_CONNECTION_LOST_NAMES = ("INVALID_CONN", "RPC")
_DENIED_NAMES = ("AUTH_FAILED", "AUTH_CANCELLED", "OPERATION_DENIED", "ACCESS_DENIED")
_CONFIG_NAMES = ("XML_ERROR", "XML_DETAIL", "CONFIG_UNSUPPORTED", "XML_INVALID_SCHEMA")
_DRIVER_MISSING_NAMES = ("NO_SUPPORT", "INVALID_ARG")
ERR = {}
FROM_RPC = 7  # virErrorDomain VIR_FROM_RPC


def _codes(names):
    return frozenset(ERR[n] for n in names if n in ERR)


class Unreachable(GenericError):
    """libvirtd could not be reached (down, hung, or the connection broke)."""


class BadURI(NotConfigured):
    """libvirtd answered, but refused the URI (wrong path, unknown driver option)."""


class CallTimeout(Unreachable):
    """A libvirt call did not return within its bound (libvirtd or qemu hung)."""


def load_libvirt():
    """Import libvirt-python, silencing its default 'print every error to stderr' handler."""
    try:
        import libvirt
    except ImportError as exc:
        raise NotInstalled("libvirt-python is not installed for this interpreter: %s" % exc) from None
    libvirt.registerErrorHandler(_ignore_error, None)
    if not ERR:
        ERR.update((k[8:], v) for k, v in vars(libvirt).items() if k.startswith("VIR_ERR_")
                   and isinstance(v, int))
    return libvirt


def _ignore_error(_ctx, _err):
    return None


def error_code(exc):
    try:
        return exc.get_error_code()
    except AttributeError:
        return None


def connection_lost(exc):
    """Did this error come from the connection to libvirtd rather than from libvirtd?"""
    code = error_code(exc)
    if code in _codes(_CONNECTION_LOST_NAMES):
        return True
    try:
        domain = exc.get_error_domain()
    except AttributeError:
        return False
    # "Failed to connect socket", "End of file while reading data": errors of the RPC layer
    return code == ERR.get("SYSTEM_ERROR") and domain == FROM_RPC


def translate(exc, what):
    """A libvirtError as the typed hasf error that tells the truth about it."""
    code = error_code(exc)
    message = "%s: %s" % (what, exc)
    if connection_lost(exc):
        return Unreachable(message)
    if code == ERR.get("OPERATION_TIMEOUT"):
        return CallTimeout(message)
    if code in _codes(_DENIED_NAMES):
        return PermissionDenied(message)
    if code in _codes(_CONFIG_NAMES):
        return NotConfigured(message)
    return GenericError(message)


def call_bounded(func, args=(), timeout=None, what="libvirt call"):
    """func(*args) in a daemon thread; its value, its exception, or CallTimeout.

    A call that times out is abandoned (libvirt calls cannot be cancelled);
    the thread dies with the agent process.
    """
    box = []

    def target():
        try:
            box.append((True, func(*args)))
        except BaseException as exc:  # noqa: BLE001 -- handed to the caller below
            box.append((False, exc))

    thread = threading.Thread(target=target, name=what, daemon=True)
    thread.start()
    thread.join(timeout)
    if not box:
        raise CallTimeout("%s did not return within %.1fs (libvirtd or the hypervisor hangs)"
                          % (what, timeout or 0))
    ok, value = box[0]
    if ok:
        return value
    raise value


class Hypervisor:
    """One libvirt connection for one agent run, every call bounded by the deadline."""

    def __init__(self, uri, deadline, log=None, libvirt=None):
        self.uri = uri or None  # None: libvirt's default URI (xen:///system on a Xen dom0)
        self.deadline = deadline
        self.log = log
        self.lv = libvirt or load_libvirt()
        self.conn = None

    @property
    def shown_uri(self):
        return self.uri or "the default libvirt URI"

    # --- the connection ---------------------------------------------------------------
    def connect(self, within=None, retry=True):
        """Open the connection within `within` (a Deadline; default the operation's).

        libvirtd that refuses (down, restarting) is retried until `within`
        expires; one that accepts but does not answer costs the whole bound.
        """
        within = within or self.deadline
        last = None
        while True:
            left = within.remaining()
            if left <= 0:
                break
            try:
                self.conn = call_bounded(self.lv.open, (self.uri,), left,
                                         "connecting to %s" % self.shown_uri)
                return self
            except CallTimeout as exc:
                raise Unreachable(str(exc)) from None
            except self.lv.libvirtError as exc:
                error = self._open_error(exc)
                if not isinstance(error, Unreachable) or not retry:
                    raise error from None
                last = error
            within.sleep(0.5)
        raise last or Unreachable("cannot connect to %s: no time left" % self.shown_uri)

    def _open_error(self, exc):
        code = error_code(exc)
        text = "cannot connect to %s: %s" % (self.shown_uri, exc)
        if code in _codes(_DRIVER_MISSING_NAMES) or "no connection driver" in str(exc):
            return NotInstalled(text)
        if code in _codes(_DENIED_NAMES):
            return PermissionDenied(text)
        if connection_lost(exc) or code == ERR.get("OPERATION_TIMEOUT"):
            return Unreachable(text)
        return BadURI(text)

    def close(self):
        if self.conn is not None:
            conn, self.conn = self.conn, None
            try:
                call_bounded(conn.close, (), min(2.0, self.deadline.remaining() or 0.1),
                             "closing the libvirt connection")
            except (OCFError, self.lv.libvirtError):
                pass  # the process is about to exit; the daemon cleans up

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # --- bounded, translated calls ----------------------------------------------------
    def call(self, func, *args, what="libvirt call", timeout=None):
        """func(*args) bounded by the deadline (and `timeout`), libvirt errors translated."""
        bound = self.deadline.bound(timeout)
        if bound <= 0:
            raise CallTimeout("%s: no time left before the operation timeout" % what)
        try:
            return call_bounded(func, args, bound, what)
        except self.lv.libvirtError as exc:
            raise translate(exc, what) from None

    def uri_in_use(self):
        return self.call(self.conn.getURI, what="asking libvirt for its URI")

    def lookup(self, name):
        """The virDomain called `name`, or None when libvirt has no such domain."""
        try:
            return call_bounded(self.conn.lookupByName, (name,), self.deadline.bound(),
                                "looking up domain %s" % name)
        except self.lv.libvirtError as exc:
            if error_code(exc) == ERR["NO_DOMAIN"]:
                return None
            raise translate(exc, "looking up domain %s" % name) from None

    def state(self, dom):
        """(state, reason) of dom; (None, None) if it vanished (transient domain gone)."""
        try:
            return tuple(call_bounded(dom.state, (), self.deadline.bound(),
                                      "reading the state of %s" % dom.name()))
        except self.lv.libvirtError as exc:
            if error_code(exc) == ERR["NO_DOMAIN"]:
                return None, None
            raise translate(exc, "reading the state of domain %s" % dom.name()) from None

    def is_active(self, dom):
        state, _ = self.state(dom)
        return state in ACTIVE_STATES

    def wait_state(self, dom, predicate, within, interval=0.2, max_interval=1.0):
        """Poll dom's state until predicate(state) holds; the last state, or None on expiry."""
        seen = []

        def check():
            state, _ = self.state(dom)
            seen[:] = [state]
            return predicate(state)

        if within.wait_for(check, interval, max_interval):
            return seen[0]
        return None


def state_name(state):
    return STATE_NAMES.get(state, "unknown state %s" % (state,))
