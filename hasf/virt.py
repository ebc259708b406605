"""The one libvirt boundary: the VM agent and the libvirt fence device both go through it.

Why one: libvirt-python has no connect or call timeout, and its errors are
numbers.  A hung libvirtd (accepting on its socket but never answering)
would block any call forever -- a failed stop, or a fence whose
power_timeout means nothing -- and two boundaries had two error tables that
disagreed.  So here, once:
- every call runs in a helper thread bounded by what is left of the caller's
  deadline (hasf.bounded); a call that hangs marks the connection hung, and
  a hung connection is not politely closed;
- every libvirt error is classified by this module's one table (`ERR`,
  `translate`, `open_error`) into a kind -- unreachable, timeout, bad URI,
  not installed, denied, configuration, other failure -- and raised as the
  class the front end names for that kind (`Kinds`): OCF errors for the VM
  agent (hasf.agents.vm_libvirt), fencing errors for fence_hasf_libvirt.
  Nothing is turned into a guessed "not running" by a broad except.

`LeanHypervisor` is the same boundary for the one hot path, a depth-0
monitor: it drives libvirt-python's C extension (libvirtmod) directly for
the four calls a monitor needs (open, lookup, state, close), which saves
loading libvirt.py and `typing` (~6 ms of a ~40 ms process; the monitor runs
every few seconds for every VM).  Everything else uses the full API.
This module imports nothing heavy itself (no libvirt until a connection).
"""

from hasf import bounded

#: libvirt's virDomainState values, by number (libvirt.VIR_DOMAIN_*)
STATE_NAMES = {0: "no state", 1: "running", 2: "blocked", 3: "paused", 4: "in shutdown",
               5: "shut off", 6: "crashed", 7: "pmsuspended"}
RUNNING, BLOCKED, PAUSED, SHUTDOWN, SHUTOFF, CRASHED, PMSUSPENDED = 1, 2, 3, 4, 5, 6, 7
#: states in which the domain's hypervisor process exists: the VM is "active" here
ACTIVE_STATES = frozenset((RUNNING, BLOCKED, PAUSED, SHUTDOWN, PMSUSPENDED))
INACTIVE_STATES = frozenset((SHUTOFF, CRASHED))
#: virDomainPausedReason values of pauses that end by themselves (libvirt.VIR_DOMAIN_PAUSED_*)
TRANSIENT_PAUSE_REASONS = {"MIGRATION": 2, "SAVE": 3, "DUMP": 4, "FROM_SNAPSHOT": 7,
                           "SHUTTING_DOWN": 8, "SNAPSHOT": 9, "STARTING_UP": 11, "POSTCOPY": 12}

#: virErrorNumber values (stable libvirt ABI; tests check each against libvirt.VIR_ERR_*)
ERR = {"NO_SUPPORT": 3, "NO_CONNECT": 5, "INVALID_CONN": 6, "INVALID_ARG": 8,
       "XML_ERROR": 27, "OPERATION_DENIED": 29, "XML_DETAIL": 35, "SYSTEM_ERROR": 38,
       "RPC": 39, "NO_DOMAIN": 42, "AUTH_FAILED": 45, "CONFIG_UNSUPPORTED": 67,
       "OPERATION_INVALID": 55, "OPERATION_TIMEOUT": 68, "AUTH_CANCELLED": 79,
       "ACCESS_DENIED": 88,
       "XML_INVALID_SCHEMA": 92}
FROM_RPC = 7  # virErrorDomain VIR_FROM_RPC
_CONNECTION_LOST = frozenset((ERR["INVALID_CONN"], ERR["RPC"]))
_DENIED = frozenset((ERR["AUTH_FAILED"], ERR["AUTH_CANCELLED"], ERR["OPERATION_DENIED"],
                     ERR["ACCESS_DENIED"]))
_CONFIG = frozenset((ERR["XML_ERROR"], ERR["XML_DETAIL"], ERR["CONFIG_UNSUPPORTED"],
                     ERR["XML_INVALID_SCHEMA"]))
_DRIVER_MISSING = frozenset((ERR["NO_SUPPORT"], ERR["INVALID_ARG"]))


class Kinds:
    """Which exception class a front end raises for each kind of libvirt failure.

    The boundary decides *what* happened (this module's one error table);
    the front end names the class its callers understand: OCF errors for the
    VM agent (hasf.agents.vm_libvirt), fencing errors for the fence device.
    `timeout` must be a subclass of `unreachable` (a hang is unreachability).
    """

    def __init__(self, unreachable, timeout, bad_uri, not_installed, denied, config, failed):
        self.unreachable, self.timeout, self.bad_uri = unreachable, timeout, bad_uri
        self.not_installed, self.denied, self.config = not_installed, denied, config
        self.failed = failed


def load_libvirt(kinds):
    """Import libvirt-python, silencing its default 'print every error to stderr' handler."""
    try:
        import libvirt
    except ImportError as exc:
        raise kinds.not_installed("libvirt-python is not installed for this interpreter: %s"
                                  % exc) from None
    libvirt.registerErrorHandler(_ignore_error, None)
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
    if code in _CONNECTION_LOST:
        return True
    try:
        domain = exc.get_error_domain()
    except AttributeError:
        return False
    # "Failed to connect socket", "End of file while reading data": errors of the RPC layer
    return code == ERR["SYSTEM_ERROR"] and domain == FROM_RPC


def translate(exc, what, kinds):
    """A libvirt error as the typed error (of `kinds`) that tells the truth about it."""
    code = error_code(exc)
    message = "%s: %s" % (what, exc)
    if connection_lost(exc):
        return kinds.unreachable(message)
    if code == ERR["OPERATION_TIMEOUT"]:
        return kinds.timeout(message)
    if code in _DENIED:
        return kinds.denied(message)
    if code in _CONFIG:
        return kinds.config(message)
    return kinds.failed(message)


def open_error(exc, uri_shown, kinds):
    """Why a connection could not be opened, as the typed error of `kinds`."""
    code = error_code(exc)
    text = "cannot connect to %s: %s" % (uri_shown, exc)
    if code in _DRIVER_MISSING or "no connection driver" in str(exc):
        return kinds.not_installed(text)
    if code in _DENIED:
        return kinds.denied(text)
    if connection_lost(exc) or code == ERR["OPERATION_TIMEOUT"]:
        return kinds.unreachable(text)
    return kinds.bad_uri(text)


def call_bounded(func, args=(), timeout=None, what="libvirt call", kinds=None):
    """func(*args) bounded by `timeout` (hasf.bounded); kinds.timeout when libvirtd hangs."""
    try:
        return bounded.call(func, args, timeout, what)
    except bounded.TimedOut:
        raise kinds.timeout("%s did not return within %.1fs (libvirtd or the hypervisor "
                            "hangs)" % (what, timeout or 0)) from None


#: what Hypervisor.call returns for an error the caller said to ignore
IGNORED = object()


class Hypervisor:
    """One libvirt connection for one run, every call bounded by the deadline.

    A subclass sets `kinds` (the exception classes its callers understand).
    `deadline` may be replaced between calls: a fence device keeps one
    connection while the engine hands each status poll its own deadline.
    """

    kinds = None

    def __init__(self, uri, deadline, log=None, libvirt=None):
        self.uri = uri or None  # None: libvirt's default URI (xen:///system on a Xen dom0)
        self.deadline = deadline
        self.log = log
        self.lv = libvirt or load_libvirt(self.kinds)
        self.errors = (self.lv.libvirtError,)
        self.conn = None
        #: seconds any one call may take at most (None: up to the deadline)
        self.call_cap = None
        self.hung = False

    @property
    def shown_uri(self):
        return self.uri or "the default libvirt URI"

    # --- primitives (the lean variant replaces these) ---------------------------------
    def _open(self):
        return self.lv.open(self.uri)

    def _close(self, conn):
        return conn.close()

    @staticmethod
    def _lookup(conn, name):
        return conn.lookupByName(name)

    @staticmethod
    def _state(dom):
        return dom.state()

    @staticmethod
    def _name(dom):
        return dom.name()

    # --- the connection ---------------------------------------------------------------
    def connect(self, within=None, retry=True):
        """Open the connection within `within` (a Deadline; default the operation's).

        libvirtd that refuses (down, restarting) is retried until `within`
        expires when `retry`; one that accepts but does not answer costs the
        whole bound.
        """
        within = within or self.deadline
        last = None
        while True:
            left = within.remaining()
            if left <= 0:
                break
            try:
                self.conn = call_bounded(self._open, (), left,
                                         "connecting to %s" % self.shown_uri, self.kinds)
                return self
            except self.kinds.timeout as exc:
                self.hung = True
                raise self.kinds.unreachable(str(exc)) from None
            except self.errors as exc:
                error = open_error(exc, self.shown_uri, self.kinds)
                if not isinstance(error, self.kinds.unreachable) or not retry:
                    raise error from None
                last = error
            within.sleep(0.5)
        raise last or self.kinds.unreachable("cannot connect to %s: no time left"
                                             % self.shown_uri)

    def close(self):
        """Log out of libvirtd -- briefly, and not at all from one that hung."""
        if self.conn is not None and not self.hung:
            conn, self.conn = self.conn, None
            try:
                call_bounded(self._close, (conn,), min(1.0, self.deadline.remaining() / 2),
                             "closing the libvirt connection", self.kinds)
            except (self.kinds.timeout,) + self.errors:
                pass  # the process is about to exit; the daemon cleans up

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # --- bounded, translated calls ----------------------------------------------------
    def _bounded(self, func, args, bound, what):
        """call_bounded, remembering a hang: a hung connection is not politely closed."""
        try:
            return call_bounded(func, args, bound, what, self.kinds)
        except self.kinds.timeout:
            self.hung = True
            raise

    def bound(self, timeout=None):
        """Seconds one call may take: `timeout` if given, else call_cap; within the deadline."""
        return self.deadline.bound(timeout if timeout is not None else self.call_cap)

    def call(self, func, *args, what="libvirt call", timeout=None, ignore=()):
        """func(*args) bounded by the deadline (and `timeout`), libvirt errors translated;
        IGNORED for an error whose code is in `ignore` (e.g. "domain already gone")."""
        bound = self.bound(timeout)
        if bound <= 0:
            raise self.kinds.timeout("%s: no time left before the operation timeout" % what)
        try:
            return self._bounded(func, args, bound, what)
        except self.errors as exc:
            if error_code(exc) in ignore:
                return IGNORED
            raise translate(exc, what, self.kinds) from None

    def uri_in_use(self):
        return self.call(self.conn.getURI, what="asking libvirt for its URI")

    def lookup(self, name):
        """The domain called `name`, or None when libvirt has no such domain."""
        what = "looking up domain %s" % name
        bound = self.bound()
        if bound <= 0:
            raise self.kinds.timeout("%s: no time left before the operation timeout" % what)
        try:
            return self._bounded(self._lookup, (self.conn, name), bound, what)
        except self.errors as exc:
            if error_code(exc) == ERR["NO_DOMAIN"]:
                return None
            raise translate(exc, what, self.kinds) from None

    def state(self, dom):
        """(state, reason) of dom; (None, None) if it vanished (transient domain gone)."""
        what = "reading the state of domain %s" % self._name(dom)
        bound = self.bound()
        if bound <= 0:
            raise self.kinds.timeout("%s: no time left before the operation timeout" % what)
        try:
            return tuple(self._bounded(self._state, (dom,), bound, what))
        except self.errors as exc:
            if error_code(exc) == ERR["NO_DOMAIN"]:
                return None, None
            raise translate(exc, what, self.kinds) from None

    def is_active(self, dom):
        state, _ = self.state(dom)
        return state in ACTIVE_STATES

    def is_active_now(self, dom):
        """virDomainIsActive (for a crashed domain: is its process kept?)."""
        return bool(self.call(dom.isActive, what="checking domain %s" % self._name(dom)))

    def wait_state(self, dom, predicate, within, interval=0.2, max_interval=1.0):
        """Poll dom's state until predicate(state) holds: True, or False on expiry.

        A bool, not the state: a transient domain that shut down is gone and
        its state is None, which must not read as "the wait expired" (a PV
        domU on Xen powers off within seconds; a stop then destroyed it
        "after the timeout" that never passed).
        """
        return bool(within.wait_for(lambda: predicate(self.state(dom)[0]), interval,
                                    max_interval))


class LeanError(Exception):
    """A libvirt error fetched from libvirtmod, shaped like libvirt.libvirtError."""

    def __init__(self, err, what):
        self.err = err or (None, None, "%s failed (no libvirt error recorded)" % what)
        super().__init__(self.err[2])

    def get_error_code(self):
        return self.err[0]

    def get_error_domain(self):
        return self.err[1]


class LeanHypervisor(Hypervisor):
    """The depth-0 monitor's Hypervisor: open/lookup/state/close through libvirtmod only.

    libvirt keeps the last error per thread, so each primitive fetches it in
    the thread that made the call.  A domain is (capsule, name).
    """

    def __init__(self, uri, deadline, log=None):
        try:
            import libvirtmod
        except ImportError as exc:
            raise self.kinds.not_installed("libvirt-python is not installed for this "
                                           "interpreter: %s" % exc) from None
        libvirtmod.virRegisterErrorHandler(_ignore_error, None)
        self.mod = libvirtmod
        self.uri = uri or None
        self.deadline = deadline
        self.log = log
        self.lv = None
        self.errors = (LeanError,)
        self.conn = None
        self.call_cap = None
        self.hung = False

    def _checked(self, value, what, failed=None):
        if value is failed or (failed is None and value is None):
            raise LeanError(self.mod.virGetLastError(), what)
        return value

    def _open(self):
        return self._checked(self.mod.virConnectOpen(self.uri), "virConnectOpen")

    def _close(self, conn):
        return self._checked(self.mod.virConnectClose(conn), "virConnectClose", -1)

    def _lookup(self, conn, name):
        return (self._checked(self.mod.virDomainLookupByName(conn, name),
                              "virDomainLookupByName"), name)

    def _state(self, dom):
        return self._checked(self.mod.virDomainGetState(dom[0], 0), "virDomainGetState")

    @staticmethod
    def _name(dom):
        return dom[1]

    def is_active_now(self, dom):
        """virDomainIsActive (for a crashed domain: is its process kept?)."""
        what = "checking domain %s" % dom[1]

        def active():
            return self._checked(self.mod.virDomainIsActive(dom[0]), what, -1)
        try:
            return bool(self._bounded(active, (), self.bound(), what))
        except LeanError as exc:
            raise translate(exc, what, self.kinds) from None

    def call(self, *_args, **_kw):
        raise NotImplementedError("the lean hypervisor only opens, looks up and reads state")


def state_name(state):
    return STATE_NAMES.get(state, "unknown state %s" % (state,))
