"""libvirt fencing through the libvirt API (`fence_hasf_libvirt`, `external/hasf-libvirt`).

A node is a libvirt domain on a hypervisor reached by an explicit URI
(qemu:///system, qemu+ssh://host/system, xen+ssh://host/, ...), found through
a node -> domain map (`host_map` / external/libvirt's `hostlist`).
off = destroy, on = create (start), status = domain state, list = domains.

What is done better than the anchors:
- fence_virsh has no URI option and drives virsh over ssh (#125); here the
  URI is a parameter and the API is used directly (no virsh, no shell).
- external/libvirt's reset destroys, sleeps a fixed 2 s and starts without
  checking that the domain was ever off; here the engine verifies off by
  polling the domain state, then starts it and verifies it runs.
- Hostname != domain name is a map, not a convention (#316, #243).
- A domain that was never seen is an error, never "off": a typo in the map
  must not turn into a successful fence.  A transient domain that vanishes
  after destroy is off (it was seen in this run before).

libvirt-python is imported only when a device is opened (not for
meta-data).  libvirt calls have no timeout of their own, so connecting runs
in a helper thread bounded by login_timeout.
"""

from hasf import bounded

from hasf.stonith import fence_agent, glue
from hasf.stonith.definition import Definition
from hasf.stonith.engine import OFF, ON, Device
from hasf.stonith.errors import AuthError, ConfigError, DeviceError, StatusUnknown, UnknownTarget
from hasf.stonith.params import Param
from hasf.stonith.targets import TargetMap

PARAMS = (
    Param("uri", shortdesc="libvirt URI of the hypervisor (qemu:///system, qemu+ssh://host/system)",
          aliases=("hypervisor_uri",), glue_name="hypervisor_uri", default="qemu:///system",
          metavar="uri"),
    Param("host_map", shortdesc="Node to domain map: node1:dom1;node2:dom2 (a bare name is both)",
          aliases=("hostlist", "pcmk_host_map_hasf"), glue_name="hostlist"),
    Param("reset_method", shortdesc="external/libvirt compatibility; always a verified power cycle",
          choices=("power_cycle", "reboot"), default="power_cycle", fence=False),
)

# virDomainState values (libvirt.VIR_DOMAIN_*), so status needs no constant lookups
_STATE_NAMES = {0: "nostate", 1: "running", 2: "blocked", 3: "paused", 4: "shutdown",
                5: "shutoff", 6: "crashed", 7: "pmsuspended"}
_OFF_STATES = (5,)          # shut off: no qemu process left
_VIR_ERR_NO_DOMAIN = 42
_VIR_ERR_OPERATION_INVALID = 55


def _call(func, timeout, what):
    """func() bounded by `timeout` (hasf.bounded); DeviceError if libvirtd does not answer."""
    try:
        return bounded.call(func, (), timeout, what)
    except bounded.TimedOut:
        raise DeviceError("%s did not answer within %.0f s" % (what, timeout)) from None


class LibvirtDevice(Device):
    def __init__(self, opts, password, log, validate_only=False):
        self.log = log
        self.uri = opts.uri
        self.map = TargetMap.parse(opts.host_map)
        if not self.uri or "://" not in self.uri:
            raise ConfigError("uri %r is not a libvirt URI (driver[+transport]://...)" % self.uri)
        if opts.reset_method == "reboot":
            log.warning("reset_method=reboot ignored: a guest reboot cannot be verified; "
                        "hasf destroys, verifies off, then starts the domain")
        self.username, self.password = opts.username, password
        self.timeout = opts.login_timeout
        self._conn = None
        self._libvirt = None
        self._seen = set()

    # -- connection -----------------------------------------------------------------
    def _lv(self):
        if self._libvirt is None:
            try:
                import libvirt
            except ImportError:
                raise DeviceError("libvirt-python is not installed") from None
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # no stderr noise
            self._libvirt = libvirt
        return self._libvirt

    def conn(self):
        if self._conn is None:
            lv = self._lv()
            if self.username or self.password:
                def answer(creds, _data):
                    for cred in creds:
                        if cred[0] == lv.VIR_CRED_AUTHNAME:
                            cred[4] = self.username or ""
                        elif cred[0] == lv.VIR_CRED_PASSPHRASE:
                            cred[4] = self.password.reveal() if self.password else ""
                    return 0
                auth = [[lv.VIR_CRED_AUTHNAME, lv.VIR_CRED_PASSPHRASE], answer, None]
                opener = lambda: lv.openAuth(self.uri, auth, 0)  # noqa: E731
            else:
                opener = lambda: lv.open(self.uri)  # noqa: E731
            try:
                self._conn = _call(opener, self.timeout, "libvirt at %s" % self.uri)
            except lv.libvirtError as exc:
                text = exc.get_error_message() or str(exc)
                if "auth" in text.lower():
                    raise AuthError("libvirt %s refused us: %s" % (self.uri, text)) from None
                raise DeviceError("cannot connect to %s: %s" % (self.uri, text)) from None
        return self._conn

    def close(self):
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 -- closing must not turn success into failure
                pass
            self._conn = None

    def _domain(self, name):
        """The virDomain, or None if it does not exist (only after we saw it)."""
        lv = self._lv()
        try:
            dom = self.conn().lookupByName(name)
        except lv.libvirtError as exc:
            if exc.get_error_code() == _VIR_ERR_NO_DOMAIN:
                if name in self._seen:
                    return None
                raise UnknownTarget("domain %s is not defined on %s" % (name, self.uri)) from None
            raise DeviceError("looking up %s on %s: %s" % (name, self.uri, exc)) from None
        self._seen.add(name)
        return dom

    # -- the five questions ----------------------------------------------------------
    def status(self, target, deadline):
        dom = self._domain(target)
        if dom is None:
            return OFF        # transient domain destroyed in this run
        try:
            state = dom.state()[0]
        except self._lv().libvirtError as exc:
            if exc.get_error_code() == _VIR_ERR_NO_DOMAIN:
                return OFF
            raise DeviceError("state of %s: %s" % (target, exc)) from None
        if state in _OFF_STATES:
            return OFF
        if state in _STATE_NAMES:
            return ON
        raise StatusUnknown("domain %s is in unknown state %r" % (target, state))

    def power_off(self, target, deadline, reboot=False):
        dom = self._domain(target)
        if dom is None:
            return
        try:
            dom.destroy()
        except self._lv().libvirtError as exc:
            if exc.get_error_code() in (_VIR_ERR_NO_DOMAIN, _VIR_ERR_OPERATION_INVALID):
                return        # already gone / not running: the status poll decides
            raise DeviceError("destroy %s: %s" % (target, exc)) from None

    def power_on(self, target, deadline):
        dom = self._domain(target)
        if dom is None:
            raise DeviceError("domain %s was transient and is gone; it cannot be started"
                              % target)
        try:
            dom.create()
        except self._lv().libvirtError as exc:
            if exc.get_error_code() == _VIR_ERR_OPERATION_INVALID and dom.isActive():
                return
            raise DeviceError("start %s: %s" % (target, exc)) from None

    def list_targets(self, deadline):
        lv = self._lv()
        try:
            domains = self.conn().listAllDomains(0)
        except lv.libvirtError as exc:
            raise DeviceError("listing domains on %s: %s" % (self.uri, exc)) from None
        return sorted((d.name(), d.UUIDString()) for d in domains)

    def health(self, deadline):
        lv = self._lv()
        try:
            self.conn().getLibVersion()
        except lv.libvirtError as exc:
            raise DeviceError("%s does not answer: %s" % (self.uri, exc)) from None
        missing = []
        for node, domain in self.map.items():
            try:
                self._domain(domain)
            except UnknownTarget:
                missing.append("%s (%s)" % (domain, node))
        if missing:
            raise DeviceError("not defined on %s: %s" % (self.uri, ", ".join(missing)))



DEFINITION = Definition(
    "libvirt", "Fence agent for libvirt domains (hasf, any URI, verified off)",
    "fence_hasf_libvirt fences virtual machines through the libvirt API on an explicit "
    "hypervisor URI (qemu:///system, qemu+ssh://host/system, xen+ssh://host/). Nodes map to "
    "domains with host_map (node1:dom1;node2:dom2). Off destroys the domain and is reported "
    "only once libvirt says it is shut off; reboot is a verified off followed by start.",
    PARAMS, LibvirtDevice, vendor_url="https://libvirt.org",
    glue_info={"devid": "hasf libvirt STONITH device",
               "devname": "hasf libvirt STONITH external device",
               "devdescr": "libvirt-based guest reset through the hypervisor: destroy, verify "
                           "shut off, start (no fixed sleep, no unverified reset).",
               "devurl": "https://libvirt.org/uri.html"})

fence_main = fence_agent.main_for(DEFINITION)
glue_main = glue.main_for(DEFINITION)
