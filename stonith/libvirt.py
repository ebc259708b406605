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

It talks to libvirtd only through hasf.virt, the one libvirt boundary it
shares with the VM agent (one error table): libvirt calls have no timeout
of their own, so every call -- connect, lookup, state, destroy, create,
list, getLibVersion -- runs bounded by what is left of the deadline the
engine hands this call (connect also by login_timeout).  A libvirtd that
accepts and then hangs makes the call fail in time, so power_timeout bounds
off and reboot.  libvirt-python is imported only when a device is opened
(not for meta-data).
"""

from hasf import virt

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

_OFF_STATES = (virt.SHUTOFF,)   # shut off: no qemu process left
_GONE = (virt.ERR["NO_DOMAIN"], virt.ERR["OPERATION_INVALID"])


class LibvirtTimeout(DeviceError):
    """libvirtd (or the hypervisor) did not answer within the deadline."""


KINDS = virt.Kinds(unreachable=DeviceError, timeout=LibvirtTimeout, bad_uri=ConfigError,
                   not_installed=DeviceError, denied=AuthError, config=DeviceError,
                   failed=DeviceError)


class FenceHypervisor(virt.Hypervisor):
    """The boundary with fencing errors, and credentials for openAuth when configured."""

    kinds = KINDS
    auth = None      # (username, Secret password) or None

    def _open(self):
        if not self.auth:
            return self.lv.open(self.uri)
        lv, (username, password) = self.lv, self.auth

        def answer(creds, _data):
            for cred in creds:
                if cred[0] == lv.VIR_CRED_AUTHNAME:
                    cred[4] = username or ""
                elif cred[0] == lv.VIR_CRED_PASSPHRASE:
                    cred[4] = password.reveal() if password else ""
            return 0
        return lv.openAuth(self.uri, [[lv.VIR_CRED_AUTHNAME, lv.VIR_CRED_PASSPHRASE],
                                      answer, None], 0)


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
        self.hv = None
        self._seen = set()

    # -- connection -----------------------------------------------------------------
    def _hv(self, deadline):
        """The connected boundary, its deadline now this call's (one connection per run)."""
        if self.hv is None:
            hv = FenceHypervisor(self.uri, deadline, self.log)
            if self.username or self.password:
                hv.auth = (self.username, self.password)
            hv.connect(deadline.sub(self.timeout), retry=False)
            self.hv = hv
        self.hv.deadline = deadline
        return self.hv

    def close(self):
        if self.hv is not None:
            hv, self.hv = self.hv, None
            try:
                hv.close()      # bounded, and skipped for a hung connection
            except Exception:  # noqa: BLE001 -- closing must not turn success into failure
                pass

    def _domain(self, hv, name):
        """The domain, or None if it does not exist (only after we saw it)."""
        dom = hv.lookup(name)
        if dom is None:
            if name in self._seen:
                return None
            raise UnknownTarget("domain %s is not defined on %s" % (name, self.uri))
        self._seen.add(name)
        return dom

    # -- the five questions ----------------------------------------------------------
    def status(self, target, deadline):
        hv = self._hv(deadline)
        dom = self._domain(hv, target)
        if dom is None:
            return OFF        # transient domain destroyed in this run
        state, _reason = hv.state(dom)
        if state is None or state in _OFF_STATES:
            return OFF
        if state in virt.STATE_NAMES:
            return ON
        raise StatusUnknown("domain %s is in unknown state %r" % (target, state))

    def power_off(self, target, deadline, reboot=False):
        hv = self._hv(deadline)
        dom = self._domain(hv, target)
        if dom is not None:
            # already gone / not running: the status poll decides
            hv.call(dom.destroy, what="destroying %s" % target, ignore=_GONE)

    def power_on(self, target, deadline):
        hv = self._hv(deadline)
        dom = self._domain(hv, target)
        if dom is None:
            raise DeviceError("domain %s was transient and is gone; it cannot be started"
                              % target)
        done = hv.call(dom.create, what="starting %s" % target,
                       ignore=(virt.ERR["OPERATION_INVALID"],))
        if done is virt.IGNORED and not hv.is_active_now(dom):
            raise DeviceError("start %s: libvirt refused, and it is not running" % target)

    def list_targets(self, deadline):
        hv = self._hv(deadline)
        domains = hv.call(hv.conn.listAllDomains, 0, what="listing domains on %s" % self.uri)
        # name() and UUIDString() are answered from the client's copy: no round trip
        return sorted((d.name(), d.UUIDString()) for d in domains)

    def health(self, deadline):
        hv = self._hv(deadline)
        hv.call(hv.conn.getLibVersion, what="asking %s for its version" % self.uri)
        missing = []
        for node, domain in self.map.items():
            try:
                self._domain(hv, domain)
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
               "devurl": "https://libvirt.org/uri.html"},
    compat=True)

fence_main = fence_agent.main_for(DEFINITION)
glue_main = glue.main_for(DEFINITION)
