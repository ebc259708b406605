"""ocf:hasf:VirtualMachine -- a libvirt domain (Xen or KVM/qemu) as a Pacemaker resource.

The agent the whole scenario exists for: the VM that runs on one node, moves
(live, when allowed) and comes back.  Anchor: heartbeat/VirtualDomain, minus
its weaknesses: one libvirt connection per run through libvirt-python
(hasf.agents.vm_libvirt, every call bounded), `shutdown_mode` that really
reaches libvirt, a remembered domain identity (state file) so stop and
probes stay right when the config on shared storage is gone, and "not
running" only when that is proven.

Modules: vm_config (read the domain XML, cheap identity), vm_libvirt (the
bounded, error-translating libvirt boundary), vm_procs (hypervisor processes
when libvirtd is unreachable), vm_migrate (live migration).  Nothing heavy is
imported for meta-data; a depth-0 monitor loads only libvirt-python's C
extension (vm_libvirt.LeanHypervisor), no libvirt.py, typing, re or lxml.

Differences from VirtualDomain worth knowing: monitor_scripts run at
OCF_CHECK_LEVEL=10 (not on every monitor); utilization is set only when
asked (autoset_utilization_* default false) and only on start/migrate_from;
migrate_options is replaced by the checked migration_options; a paused
domain is OCF_DEGRADED (running, needs attention), not "running" silently.
"""

import os

from hasf import ocf
from hasf.ocf.errors import CannotTell, GenericError, NotConfigured, NotInstalled, OCFError
from hasf.ocf.params import Checked as _Checked

_SHUTDOWN_MODES = ("acpi", "agent", "initctl", "signal", "paravirt")
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
_DIGITS = frozenset("0123456789")
_ALNUM = _LOWER | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ") | _DIGITS
_CONTROL = frozenset(chr(c) for c in range(32)) | {"\x7f"}
# characters RFC 3986 does not allow in a URI (they must be %-encoded); the sub-delimiters it
# does allow ($ & ' ; ...) pass through literally -- no shell ever sees a parameter
_URI_FORBIDDEN = _CONTROL | frozenset(' "<>\\^`{|}')


def _is_uri(text):
    scheme, sep, rest = text.partition("://")
    return bool(sep and scheme and scheme[0].isascii() and scheme[0].isalpha()
                and set(scheme) <= _ALNUM | set("+.-") and not set(rest) & _URI_FORBIDDEN)


def _is_domain_name(text):
    return 0 < len(text) <= 255 and "/" not in text and not set(text) & _CONTROL


def _is_shutdown_mode(text):
    return text == "" or all(mode in _SHUTDOWN_MODES for mode in text.split(","))


_MIGRATION_OPTIONS = ("abort_on_error", "auto_converge", "compressed", "unsafe",
                      "change_protection", "tls", "non_shared_disk", "non_shared_inc",
                      "undefine_source")


def _is_migration_options(text):
    return text == "" or all(word in _MIGRATION_OPTIONS for word in text.split(","))


def _is_word(first, rest):
    return lambda text: text == "" or (text[0] in first and set(text[1:]) <= rest)


def _is_script_list(text):
    return all(word.startswith("/") and "\0" not in word for word in text.split())


def _closing(handler):
    """Close the run's libvirt connection when the action's handler is done (clean logout
    instead of a connection reset at exit)."""
    def action(self):
        try:
            return handler(self)
        finally:
            self.close_hypervisor()
    action.__name__, action.__doc__ = handler.__name__, handler.__doc__
    return action


def _uri_param(name, shortdesc, longdesc, pct_n=False):
    hint = "a libvirt URI such as qemu+ssh://%n/system" if pct_n else \
        "a libvirt URI such as xen:///system or qemu:///system"
    return ocf.Parameter(name, _Checked(_is_uri, hint), shortdesc=shortdesc, longdesc=longdesc)


class VirtualMachine(ocf.ResourceAgent):
    name = "VirtualMachine"
    version = "1.0"
    shortdesc = "Manages a libvirt virtual machine (Xen, KVM/qemu), with live migration"
    longdesc = (
        "Starts, stops, monitors and live-migrates one libvirt domain. The domain is described "
        "by a domain XML file (config, typically on a shared configuration store) or is already "
        "defined in libvirt (name). All work goes through the libvirt API with one connection "
        "per operation, and every libvirt call is bounded by the operation timeout: a hung "
        "libvirtd makes an operation fail in time instead of hanging until Pacemaker kills it. "
        "The agent remembers the domain's name and UUID (under HA_RSCTMP), so stop and probes "
        "stay correct when the config file is unreachable; a probe answers 'not running' "
        "without libvirtd only when no hypervisor process for the domain exists on the node. "
        "For live migration set the meta attribute allow-migrate=true.")
    parameters = (
        ocf.Parameter(
            "config", ocf.Path(), unique=True, shortdesc="Domain XML file",
            longdesc="The libvirt domain XML file (as written by 'virsh dumpxml'), given as "
                     "an absolute path; the domain name is read from it. Either config or name "
                     "must be set."),
        ocf.Parameter(
            "name", _Checked(_is_domain_name, "a libvirt domain name without '/' or control "
                                              "characters"),
            unique=True, shortdesc="Domain name",
            longdesc="Name of a domain already defined in libvirt on every node, to manage it "
                     "without a config file. With config, it must match the <name> there."),
        _uri_param("hypervisor", "Hypervisor URI",
                   "libvirt connection URI of the local hypervisor, e.g. xen:///system or "
                   "qemu:///system. Unset: libvirt's default URI, which is xen:///system on "
                   "a Xen dom0."),
        ocf.Parameter(
            "persistent", ocf.Boolean(), default=False, shortdesc="Define the domain persistently",
            longdesc="false: create a transient domain from config on start (it disappears from "
                     "libvirt when stopped). true: define the domain from config (autostart "
                     "switched off: the cluster starts it) and start it; the definition stays "
                     "after stop. A domain given by name only is always started persistently."),
        ocf.Parameter(
            "force_stop", ocf.Boolean(), default=False, shortdesc="Destroy on stop",
            longdesc="Destroy the domain at once on stop instead of shutting it down gracefully "
                     "first."),
        ocf.Parameter(
            "shutdown_mode",
            _Checked(_is_shutdown_mode, "empty (the hypervisor's default) or a comma-separated "
                                        "list of: " + ", ".join(_SHUTDOWN_MODES)),
            default="", shortdesc="Graceful shutdown method(s)",
            longdesc="How the graceful part of stop asks the guest to shut down, passed to "
                     "libvirt's virDomainShutdownFlags: acpi (power button), agent (qemu guest "
                     "agent), initctl, signal, paravirt (Xen); with several, libvirt picks one "
                     "that works."),
        ocf.Parameter(
            "shutdown_timeout_share", ocf.Integer(0, 100), default=70,
            shortdesc="Share of the stop timeout for graceful shutdown (%)",
            longdesc="Percentage of the stop operation's timeout to wait for the graceful "
                     "shutdown before the domain is destroyed; the rest is kept for the destroy. "
                     "0 behaves like force_stop."),
        ocf.Parameter(
            "save_config_on_stop", ocf.Boolean(), default=False,
            shortdesc="Write the running domain's XML back to config",
            longdesc="Before stop and migrate_to, write the domain's current (migratable) XML "
                     "back to the config file, so changes made to the running domain survive "
                     "(atomic replace; only when it changed; a failure is logged, never fails "
                     "the stop)."),
        ocf.Parameter(
            "snapshot", ocf.Path(), shortdesc="Directory for saved domain state",
            longdesc="If set, stop saves the domain's memory state to <snapshot>/<name>.state "
                     "(falling back to shutdown/destroy if saving fails) and start restores "
                     "it from there if the file exists (and removes it once restored)."),
        ocf.Parameter(
            "migration_transport", _Checked(_is_word(_LOWER, _LOWER | _DIGITS),
                                            "a libvirt transport such as ssh, tcp, tls or "
                                            "libssh"),
            default="", shortdesc="Remote libvirt transport",
            longdesc="Transport used to connect to the target node's libvirtd when remoteuri "
                     "is not set: the destination URI is the hypervisor URI with '+transport' "
                     "added and the target node as host (qemu:///system -> "
                     "qemu+ssh://node2/system)."),
        ocf.Parameter(
            "migration_user", _Checked(_is_word(_LOWER | {"_"}, _LOWER | _DIGITS | set("-_.")),
                                       "a user name"),
            default="", shortdesc="Remote user for migration",
            longdesc="User to connect to the target node's libvirtd as (user@node in the "
                     "destination URI)."),
        ocf.Parameter(
            "migration_network_suffix", _Checked(lambda t: set(t) <= _ALNUM | set(".-"),
                                                 "host name characters"),
            default="", shortdesc="Migration network host suffix",
            longdesc="Appended to the first label of the target node name to reach it on a "
                     "dedicated migration network (node2.example.com + '-mig' -> "
                     "node2-mig.example.com)."),
        _uri_param("remoteuri", "Destination libvirt URI",
                   "Explicit libvirt URI of the target node's hypervisor; %n is replaced by "
                   "the target node (with migration_network_suffix). Overrides "
                   "migration_transport and migration_user.", pct_n=True),
        _uri_param("migrateuri", "Migration data URI",
                   "Hypervisor URI the migration data goes to, e.g. tcp://%n:49152; %n is "
                   "replaced by the target node (with migration_network_suffix). Unset: "
                   "tcp://<target>:<migrateport> if migrateport is set, else libvirt's choice.",
                   pct_n=True),
        ocf.Parameter(
            "migrateport", ocf.Integer(1, 65535), shortdesc="Migration data port",
            longdesc="TCP port for the migration data when migrateuri is not set."),
        ocf.Parameter(
            "migration_peer2peer", ocf.Boolean(), default=False, shortdesc="Peer-to-peer migration",
            longdesc="Let the source libvirtd connect to the destination itself "
                     "(VIR_MIGRATE_PEER2PEER) instead of the agent driving both."),
        ocf.Parameter(
            "migration_tunnelled", ocf.Boolean(), default=False, shortdesc="Tunnelled migration",
            longdesc="Tunnel the migration data through the libvirtd connection "
                     "(VIR_MIGRATE_TUNNELLED; implies peer-to-peer; migrateuri is not used)."),
        ocf.Parameter(
            "migration_options",
            _Checked(_is_migration_options, "empty or a comma-separated list of: "
                     + ", ".join(_MIGRATION_OPTIONS)),
            default="", shortdesc="More live migration flags",
            longdesc="libvirt migration flags added to every live migration "
                     "(VIR_MIGRATE_<OPTION>): e.g. auto_converge,compressed for busy guests, "
                     "unsafe when the disk cache mode makes libvirt refuse, abort_on_error to "
                     "stop on I/O errors. Replaces VirtualDomain's free-form migrate_options."),
        ocf.Parameter(
            "migration_speed", ocf.Integer(0), default=0, shortdesc="Migration bandwidth (MiB/s)",
            longdesc="Maximum migration bandwidth in MiB/s; 0 means unlimited."),
        ocf.Parameter(
            "migration_downtime", ocf.Integer(0), default=0,
            shortdesc="Maximum migration downtime (ms)",
            longdesc="Maximum tolerable downtime of the live migration in milliseconds; 0 "
                     "keeps the hypervisor's default."),
        ocf.Parameter(
            "monitor_scripts", _Checked(_is_script_list, "space-separated absolute paths"),
            default="", shortdesc="Guest check programs (depth 10)",
            longdesc="Programs run one after another by a monitor with OCF_CHECK_LEVEL=10 while "
                     "the domain runs (no arguments; HASF_DOMAIN_NAME in their environment); a "
                     "non-zero exit fails the monitor."),
        ocf.Parameter(
            "guest_agent_check", ocf.Boolean(), default=False,
            shortdesc="Ping the qemu guest agent (depth 10)",
            longdesc="A monitor with OCF_CHECK_LEVEL=10 pings the qemu guest agent "
                     "(guest-ping); no answer fails the monitor. qemu/KVM only."),
        ocf.Parameter(
            "autoset_utilization_cpu", ocf.Boolean(), default=False,
            shortdesc="Set utilization 'cpu' from the vCPU count",
            longdesc="On start and migrate_from, set the resource's utilization attribute cpu "
                     "to the domain's vCPU count (crm_resource -z)."),
        ocf.Parameter(
            "autoset_utilization_hv_memory", ocf.Boolean(), default=False,
            shortdesc="Set utilization 'hv_memory' (MiB)",
            longdesc="On start and migrate_from, set the utilization attribute hv_memory to the "
                     "domain's memory in MiB."),
        ocf.Parameter(
            "autoset_utilization_host_memory", ocf.Boolean(), default=False,
            shortdesc="Set utilization 'host_memory' (MiB)",
            longdesc="On start and migrate_from, set the utilization attribute host_memory to "
                     "the domain's memory in MiB."),
        ocf.Parameter(
            "stop_without_libvirtd", ocf.Boolean(), default=True,
            shortdesc="Stop qemu directly when libvirtd is unreachable",
            longdesc="When libvirtd cannot be reached during stop, end the domain's qemu process "
                     "directly (SIGTERM, then SIGKILL) and succeed once it is gone, instead of "
                     "failing the stop (which makes Pacemaker fence the whole node). false: "
                     "stop fails while the domain's process runs."),
    )
    actions = (
        ocf.Action("start", 90), ocf.Action("stop", 90),
        ocf.Action("status", 30, interval=10, depth=0),
        ocf.Action("monitor", 30, interval=10, depth=0),
        ocf.Action("migrate_to", 120), ocf.Action("migrate_from", 60),
        ocf.Action("validate-all", 30),
    )
    check_levels = (0, 10)

    def __init__(self, *args):
        super().__init__(*args)
        self._hv = None
        self._config = None  # (xml text, Identity) once read

    # --- identity: config, name, or what this node remembers ---------------------------
    @property
    def memory(self):
        from hasf.ocf.state import StateFile, rsctmp, safe_name

        key = self.invocation.instance or self.params.config or self.params.name or "default"
        return StateFile(safe_name("VirtualMachine", key),
                         {"HA_RSCTMP": rsctmp(self.invocation.environ)})

    def remembered(self):
        from hasf.agents.vm_config import Identity

        text = self.memory.read()
        if not text:
            return None
        fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        if not fields.get("name"):
            return None
        return Identity(fields["name"], fields.get("uuid"), fields.get("type"))

    def remember(self, ident, uri=None):
        text = "name=%s\nuuid=%s\ntype=%s\nuri=%s\n" % (
            ident.name, ident.uuid or "", ident.domain_type or "", uri or "")
        if self.memory.read() != text:
            self.memory.write(text)

    def config(self):
        """(xml, Identity) from the config file; raises ConfigUnavailable / NotConfigured."""
        if self._config is None:
            from hasf.agents import vm_config

            self._config = vm_config.load(self.params.config)
        return self._config

    def identity(self):
        """The domain's Identity, or None when nothing tells who it is.

        Order: the config file; else the name parameter; else the state file
        written when this node last started the domain.  A config that is
        unreachable is not an answer by itself.
        """
        from hasf.agents.vm_config import ConfigUnavailable, Identity

        if self.params.config:
            try:
                return self.config()[1]
            except ConfigUnavailable as exc:
                self.log.warning("%s; using what this node remembers" % exc.message)
            except OCFError as exc:
                self.log.warning("config unusable (%s); using what this node remembers"
                                 % exc.message)
        remembered = self.remembered()
        if self.params.name:
            if remembered and remembered.name == self.params.name:
                return remembered
            return Identity(self.params.name)
        return remembered

    # --- the libvirt connection ---------------------------------------------------------
    def hypervisor(self, within=None, retry=True, lean=False):
        """The connected Hypervisor (one per run); `lean` for a depth-0 monitor's few calls."""
        if self._hv is None:
            from hasf.agents import vm_libvirt

            uri = self.hypervisor_uri()
            if lean:
                hv = vm_libvirt.LeanHypervisor(uri, self.deadline, self.log)
            else:
                hv = vm_libvirt.Hypervisor(uri, self.deadline, self.log)
            hv.connect(within, retry)
            self._hv = hv
        return self._hv

    def hypervisor_uri(self):
        """The `hypervisor` parameter -- or, when its value did not parse (tolerated only on
        stop and probes), the URI this node started the domain with.  Never libvirt's default
        in its place: that would ask the wrong hypervisor and could answer "stopped"."""
        raw = self.invocation.environ.get("OCF_RESKEY_hypervisor")
        if self.params.hypervisor is not None or not raw:
            return self.params.hypervisor
        from hasf.agents.vm_libvirt import BadURI

        text = self.memory.read() or ""
        uri = dict(line.split("=", 1) for line in text.splitlines() if "=" in line).get("uri")
        if uri:
            self.log.warning("hypervisor=%r is not a valid URI; using %s, which this node "
                             "started the domain with" % (raw, uri))
            return uri
        raise BadURI("hypervisor=%r is not a valid libvirt URI" % raw)

    def close_hypervisor(self):
        if self._hv is not None:
            hv, self._hv = self._hv, None
            hv.close()

    # --- validate-all, and before start / migration -------------------------------------
    def validate(self):
        try:
            self._validate()
        finally:
            if self.invocation.action == "validate-all":
                self.close_hypervisor()

    def _validate(self):
        from hasf.agents.vm_config import ConfigUnavailable

        p = self.params
        configured, installed = [], []
        if not p.config and not p.name:
            configured.append("set config (a domain XML file) or name (a defined domain)")
        if p.migration_tunnelled and p.migrateuri:
            configured.append("migrateuri is not used by a tunnelled migration; unset one of them")
        if p.persistent is False and not p.config and p.given("persistent"):
            configured.append("persistent=false needs config (a transient domain is created from "
                              "its XML)")
        ident = None
        if p.config:
            try:
                ident = self.config()[1]
            except ConfigUnavailable as exc:
                installed.append(exc.message)
            except NotConfigured as exc:
                configured.append(exc.message)
        if ident and p.name and ident.name != p.name:
            configured.append("name=%s does not match the domain name %s in %s"
                              % (p.name, ident.name, p.config))
        if p.snapshot and not os.path.isdir(p.snapshot):
            installed.append("snapshot directory %s does not exist" % p.snapshot)
        for script in (p.monitor_scripts or "").split():
            if not (os.path.isfile(script) and os.access(script, os.X_OK)):
                installed.append("monitor script %s is not an executable file" % script)
        if configured:
            raise NotConfigured("; ".join(configured + installed))
        if installed:
            raise NotInstalled("; ".join(installed))
        hv = self.hypervisor(self.deadline.sub(fraction=0.5))
        if not p.config and hv.lookup(p.name) is None:
            raise NotInstalled("domain %s is not defined in libvirt at %s on this node"
                               % (p.name, hv.shown_uri))

    # --- monitor ------------------------------------------------------------------------
    @_closing
    def monitor(self):
        from hasf.agents.vm_libvirt import (ACTIVE_STATES, CRASHED, PAUSED,
                                            TRANSIENT_PAUSE_REASONS, state_name)

        ident = self.identity()
        if ident is None:
            if self.invocation.is_probe or not self.params.config:
                self.log.info("config %s unavailable and this node has not run the domain "
                              "since boot: not running here" % self.params.config)
                return ocf.NOT_RUNNING
            raise CannotTell("config %s is unavailable and this node keeps no record of the "
                             "domain" % self.params.config)
        hv = self._connect_for_monitor(ident)
        if hv is None:
            return ocf.NOT_RUNNING
        dom = hv.lookup(ident.name)
        state, reason = hv.state(dom) if dom is not None else (None, None)
        if state is None:
            self._check_renamed(hv, ident)
            return ocf.NOT_RUNNING
        if state in ACTIVE_STATES:
            if self.check_level >= 10:
                self._guest_checks(hv, dom, ident)
            if state == PAUSED and reason not in TRANSIENT_PAUSE_REASONS.values():
                self.log.warning("domain %s is paused (reason %s)" % (ident.name, reason))
                return ocf.DEGRADED
            return ocf.SUCCESS
        if state == CRASHED and hv.is_active_now(dom):
            raise GenericError("domain %s has crashed (its process is kept)" % ident.name)
        if state in (5, 6):
            self._check_renamed(hv, ident)
            return ocf.NOT_RUNNING
        raise CannotTell("libvirt reports domain %s in %s" % (ident.name, state_name(state)))

    def _renamed_from(self, ident):
        """The domain this node started under another name (the config was edited since)."""
        remembered = self.remembered()
        if remembered is not None and remembered.name != ident.name:
            return remembered
        return None

    def _check_renamed(self, hv, ident):
        """"Not running" must not hide the domain this node started under its old name."""
        old = self._renamed_from(ident)
        if old is None:
            return
        dom = hv.lookup(old.name)
        if dom is not None and hv.is_active(dom):
            raise GenericError("domain %s is not running, but %s, which this node started for "
                               "this resource before the config changed, still runs"
                               % (ident.name, old.name))

    def _connect_for_monitor(self, ident):
        """The connection, or None when a probe proved the domain absent without libvirtd.

        A probe asks libvirtd once: if it cannot be reached and no hypervisor
        process for the domain exists here, "not running" is proven at once
        (a probe on a node without libvirtd must be quick).  Otherwise, and
        for recurring monitors, it retries for a while (libvirtd may be
        restarting), then fails -- never "not running".
        """
        from hasf.agents.vm_libvirt import BadURI, Unreachable

        probe = self.invocation.is_probe
        lean = self.check_level < 10
        within = self.deadline.sub(fraction=0.5, seconds=10)
        try:
            return self.hypervisor(within, retry=not probe, lean=lean)
        except (Unreachable, BadURI, NotInstalled) as exc:
            if not probe:
                if isinstance(exc, NotInstalled):
                    raise
                # never "not running", and not fatal either: libvirtd may be restarting
                raise GenericError(exc.message) from None
            first = exc  # a probe where libvirt(-python, its driver, libvirtd) is missing
        from hasf.agents.vm_procs import hypervisor_evidence

        evidence = hypervisor_evidence(ident.name, ident.uuid, self.deadline)
        if evidence is None:
            self.log.warning("%s; no hypervisor process for domain %s on this node: not running"
                             % (first.message, ident.name))
            return None
        try:
            return self.hypervisor(within, lean=lean)
        except (Unreachable, BadURI, NotInstalled) as exc:
            raise CannotTell("%s, and %s exists for domain %s: cannot tell its state"
                             % (exc.message, evidence, ident.name)) from None

    def _guest_checks(self, hv, dom, ident):
        from hasf.runner import CommandError, run

        if self.params.guest_agent_check:
            try:
                import libvirt_qemu
            except ImportError:
                raise NotInstalled("guest_agent_check needs libvirt_qemu (libvirt-python)") \
                    from None
            hv.call(libvirt_qemu.qemuAgentCommand, dom, '{"execute":"guest-ping"}', 5, 0,
                    what="pinging the guest agent of %s" % ident.name, timeout=10)
        for script in (self.params.monitor_scripts or "").split():
            try:
                result = run([script], env={"HASF_DOMAIN_NAME": ident.name},
                             deadline=self.deadline, log=self.log)
            except CommandError as exc:
                raise GenericError("monitor script %s: %s" % (script, exc.message)) from None
            if result.rc != 0:
                raise GenericError("monitor script for domain %s failed: %s"
                                   % (ident.name, result.summary()))

    # --- start --------------------------------------------------------------------------
    @_closing
    def start(self):
        from hasf.agents.vm_libvirt import RUNNING

        hv = self.hypervisor()
        if self.params.config:
            xml, ident = self.config()
        else:
            xml, ident = None, self.identity()
        self.remember(ident, hv.uri_in_use())
        dom = hv.lookup(ident.name)
        if dom is not None and hv.is_active(dom):
            self.log.info("domain %s is already running" % ident.name)
            self._set_utilization(hv, dom)
            return None
        saved = self._saved_state(ident)
        if saved and os.path.exists(saved):
            self.log.info("restoring domain %s from %s" % (ident.name, saved))
            hv.call(hv.conn.restore, saved, what="restoring %s from %s" % (ident.name, saved))
            os.unlink(saved)
        elif xml is not None and self.params.persistent:
            dom = hv.call(hv.conn.defineXML, xml, what="defining domain %s" % ident.name)
            if hv.call(dom.autostart, what="reading autostart of %s" % ident.name):
                self.log.warning("switching autostart off for %s: the cluster starts it"
                                 % ident.name)
                hv.call(dom.setAutostart, 0, what="switching autostart off")
            hv.call(dom.create, what="starting domain %s" % ident.name)
        elif xml is not None:
            hv.call(hv.conn.createXML, xml, 0, what="creating domain %s" % ident.name)
        else:
            if dom is None:
                raise NotInstalled("domain %s is not defined at %s" % (ident.name, hv.shown_uri))
            hv.call(dom.create, what="starting domain %s" % ident.name)
        dom = hv.lookup(ident.name)
        if dom is None:
            raise GenericError("domain %s vanished right after it was started" % ident.name)
        state = hv.wait_state(dom, lambda s: s == RUNNING, self.deadline)
        if state is None:
            raise GenericError("domain %s did not reach 'running' within the start timeout"
                               % ident.name)
        self.remember(_with_uuid(hv, dom, ident), hv.uri_in_use())
        self.log.info("domain %s is running" % ident.name)
        self._set_utilization(hv, dom)
        return None

    def _saved_state(self, ident):
        if not self.params.snapshot:
            return None
        from hasf.ocf.state import safe_name

        return os.path.join(self.params.snapshot, safe_name(ident.name) + ".state")

    def _set_utilization(self, hv, dom):
        p = self.params
        wanted = []
        if p.autoset_utilization_cpu or p.autoset_utilization_hv_memory \
                or p.autoset_utilization_host_memory:
            _state, max_mem, _mem, vcpus, _cpu = hv.call(dom.info, what="reading domain info")
            if p.autoset_utilization_cpu:
                wanted.append(("cpu", vcpus))
            for attr in ("hv_memory", "host_memory"):
                if getattr(p, "autoset_utilization_" + attr):
                    wanted.append((attr, max_mem // 1024))
        if not wanted:
            return
        if not self.invocation.instance:
            self.log.warning("no OCF_RESOURCE_INSTANCE: cannot set utilization")
            return
        from hasf.runner import CommandError, run

        for attr, value in wanted:
            try:
                result = run(["crm_resource", "-r", self.invocation.instance, "-z", "-p", attr,
                              "-v", str(value)], timeout=10, deadline=self.deadline, log=self.log)
                if not result.ok:
                    self.log.warning("setting utilization %s: %s" % (attr, result.summary()))
            except CommandError as exc:
                self.log.warning("setting utilization %s: %s" % (attr, exc.message))

    # --- stop ---------------------------------------------------------------------------
    @_closing
    def stop(self):
        """Stop the domain; success only when libvirt (or, without libvirtd, the process
        table) shows it is not running.  Every libvirt call is capped at a quarter of the
        stop timeout, so a libvirtd that hangs leaves time to end qemu directly."""
        from hasf.agents.vm_libvirt import BadURI, CallTimeout, Unreachable

        ident = self.identity()
        if ident is None:
            self.log.info("config %s unavailable and this node has not run the domain since "
                          "boot: nothing to stop" % self.params.config)
            return None
        share = self.deadline.sub(fraction=0.25)
        try:
            try:
                hv = self.hypervisor(share, retry=False)
            except (Unreachable, BadURI, NotInstalled) as exc:
                from hasf.agents.vm_procs import hypervisor_evidence

                if hypervisor_evidence(ident.name, ident.uuid, self.deadline) is None:
                    self.log.warning("%s; no hypervisor process for domain %s here: it is "
                                     "stopped" % (exc.message, ident.name))
                    return None
                if not isinstance(exc, Unreachable) or isinstance(exc, CallTimeout):
                    raise
                # refused while the domain runs: libvirtd may be restarting; give it a while
                hv = self.hypervisor(self.deadline.sub(fraction=0.25))
            hv.call_cap = max(5.0, self.deadline.seconds / 4)
            for each in filter(None, (ident, self._renamed_from(ident))):
                dom = hv.lookup(each.name)
                if dom is None or not hv.is_active(dom):
                    self.log.info("domain %s is not running" % each.name)
                    continue
                self._stop_domain(hv, dom, each)
        except (Unreachable, BadURI, NotInstalled) as exc:
            return self._stop_without_libvirtd(ident, exc)
        return None

    def _save_config(self, hv, dom, ident):
        """save_config_on_stop: the domain's migratable XML back into the config file."""
        if not (self.params.save_config_on_stop and self.params.config):
            return
        path = self.params.config
        try:
            xml = hv.call(dom.XMLDesc, hv.lv.VIR_DOMAIN_XML_MIGRATABLE,
                          what="reading the XML of %s" % ident.name, timeout=10)
            try:
                with open(path) as handle:
                    if handle.read() == xml:
                        return
            except OSError:
                pass
            tmp = "%s.%d.tmp" % (path, os.getpid())
            with open(tmp, "w") as handle:
                handle.write(xml)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
            self.log.info("saved the XML of domain %s to %s" % (ident.name, path))
        except (OSError, GenericError, NotConfigured) as exc:
            self.log.warning("save_config_on_stop: could not write %s: %s" % (path, exc))

    def _stop_domain(self, hv, dom, ident):
        from hasf.agents.vm_libvirt import INACTIVE_STATES, PAUSED

        self._save_config(hv, dom, ident)

        def inactive(state):
            return state is None or state in INACTIVE_STATES

        share = 0 if self.params.force_stop else self.params.shutdown_timeout_share / 100.0
        if share > 0:
            graceful = self.deadline.sub(fraction=share)
            saved = self._saved_state(ident)
            if saved and self._save(hv, dom, ident, saved, graceful):
                return
            if hv.state(dom)[0] == PAUSED:
                self.log.info("domain %s is paused and cannot shut down by itself" % ident.name)
            elif self._shutdown(hv, dom, ident):
                if hv.wait_state(dom, inactive, graceful, 0.2, 1.0) is not None:
                    self.log.info("domain %s shut down" % ident.name)
                    return
                self.log.warning("domain %s did not shut down within %.0fs: destroying it"
                                 % (ident.name, graceful.seconds))
        self._destroy(hv, dom, ident, inactive)

    def _shutdown(self, hv, dom, ident):
        flags = 0
        for mode in (self.params.shutdown_mode or "").split(","):
            if mode:
                flags |= getattr(hv.lv, {
                    "acpi": "VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN",
                    "agent": "VIR_DOMAIN_SHUTDOWN_GUEST_AGENT",
                    "initctl": "VIR_DOMAIN_SHUTDOWN_INITCTL",
                    "signal": "VIR_DOMAIN_SHUTDOWN_SIGNAL",
                    "paravirt": "VIR_DOMAIN_SHUTDOWN_PARAVIRT"}[mode])
        self.log.info("shutting down domain %s (shutdown_mode=%s, flags=%d)"
                      % (ident.name, self.params.shutdown_mode or "default", flags))
        try:
            hv.call(dom.shutdownFlags, flags, what="shutting down %s" % ident.name, timeout=30)
            return True
        except GenericError as exc:
            from hasf.agents.vm_libvirt import Unreachable

            if isinstance(exc, Unreachable):
                raise
            self.log.warning("graceful shutdown refused (%s): destroying" % exc.message)
            return False

    def _save(self, hv, dom, ident, path, within):
        from hasf.agents.vm_libvirt import CallTimeout, Unreachable

        self.log.info("saving domain %s to %s" % (ident.name, path))
        try:
            hv.call(dom.save, path, what="saving %s to %s" % (ident.name, path),
                    timeout=within.remaining())
            return True
        except GenericError as exc:
            if isinstance(exc, Unreachable) and not isinstance(exc, CallTimeout):
                raise  # libvirtd gone: stop() ends qemu itself
            self.log.warning("could not save domain state (%s): shutting down instead"
                             % exc.message)
            try:
                os.unlink(path)
            except OSError:
                pass
            return False

    def _destroy(self, hv, dom, ident, inactive):
        """destroy until libvirt reports the domain inactive, or the deadline passes."""
        last = []

        def attempt():
            try:
                hv.call(dom.destroy, what="destroying %s" % ident.name)
            except GenericError as exc:
                from hasf.agents.vm_libvirt import Unreachable

                if isinstance(exc, Unreachable):
                    raise
                last[:] = [exc.message]
                self.log.warning("destroy failed: %s" % exc.message)
            state, _ = hv.state(dom)
            return inactive(state)

        self.log.info("destroying domain %s" % ident.name)
        if self.deadline.wait_for(attempt, 1.0, 4.0):
            self.log.info("domain %s destroyed" % ident.name)
            return
        raise GenericError("domain %s is still active after destroy%s" % (
            ident.name, ": " + last[0] if last else ""))

    def _stop_without_libvirtd(self, ident, exc):
        from hasf.agents.vm_procs import hypervisor_evidence, kill_qemu

        evidence = hypervisor_evidence(ident.name, ident.uuid, self.deadline)
        if evidence is None:
            self.log.warning("%s; no hypervisor process for domain %s here: it is stopped"
                             % (exc.message, ident.name))
            return None
        if not self.params.stop_without_libvirtd or not evidence.startswith("qemu"):
            raise GenericError("%s, and %s still runs domain %s: cannot stop it"
                               % (exc.message, evidence, ident.name))
        if kill_qemu(ident.name, ident.uuid, self.deadline, self.log):
            self.log.warning("domain %s stopped by ending its qemu process (libvirtd unreachable)"
                             % ident.name)
            return None
        raise GenericError("%s, and domain %s's qemu process did not exit" % (exc.message,
                                                                              ident.name))

    # --- live migration -----------------------------------------------------------------
    @_closing
    def migrate_to(self):
        from hasf.agents import vm_migrate

        target = self.invocation.migrate_target
        if not target:
            raise NotConfigured("migrate_to needs OCF_RESKEY_CRM_meta_migrate_target "
                                "(allow-migrate=true)")
        hv = self.hypervisor()
        ident = self.config()[1] if self.params.config else self.identity()
        dom = hv.lookup(ident.name)
        if dom is None or not hv.is_active(dom):
            raise GenericError("domain %s is not running here: nothing to migrate" % ident.name)
        self.remember(_with_uuid(hv, dom, ident), hv.uri_in_use())
        p = self.params
        local_uri = hv.uri_in_use()
        dest_uri = vm_migrate.remote_uri(local_uri, target, p.migration_transport,
                                         p.migration_user, p.migration_network_suffix,
                                         p.remoteuri)
        data_uri = vm_migrate.migration_uri(target, p.migration_network_suffix, p.migrateuri,
                                            p.migrateport, local_uri.split(":", 1)[0])
        self._save_config(hv, dom, ident)
        persistent = bool(hv.call(dom.isPersistent, what="checking persistence"))
        plan = vm_migrate.Plan(hv.lv, dest_uri, data_uri, p.migration_peer2peer,
                               p.migration_tunnelled, persistent, p.migration_speed,
                               p.migration_downtime,
                               [w for w in (p.migration_options or "").split(",") if w])
        try:
            vm_migrate.migrate(hv, dom, plan, self.log)
        except GenericError:
            self._after_failed_migration(hv, dom, ident, target)
            raise
        self.log.info("domain %s migrated to %s" % (ident.name, target))
        return None

    def _after_failed_migration(self, hv, dom, ident, target):
        """Log where the domain is: a failed live migration leaves it on the source, and
        Pacemaker stops the resource on both nodes before starting it again."""
        from hasf.agents.vm_libvirt import ACTIVE_STATES

        try:
            state, _ = hv.state(dom)
        except GenericError as exc:
            self.log.error("migration failed and the domain's state here is unknown: %s"
                           % exc.message)
            return
        if state in ACTIVE_STATES:
            self.log.error("migration failed; domain %s still runs here" % ident.name)
        else:
            self.log.error("migration failed and domain %s no longer runs here; it may run on "
                           "%s" % (ident.name, target))

    @_closing
    def migrate_from(self):
        from hasf.agents.vm_libvirt import RUNNING, state_name

        hv = self.hypervisor()
        ident = self.config()[1] if self.params.config else self.identity()
        found = []

        def arrived():
            dom = hv.lookup(ident.name)
            if dom is None:
                return False
            state, _ = hv.state(dom)
            found[:] = [dom, state]
            return state == RUNNING

        if not self.deadline.wait_for(arrived, 0.2, 1.0):
            seen = state_name(found[1]) if found else "not defined"
            raise GenericError("domain %s did not arrive running on this node (%s)"
                               % (ident.name, seen))
        self.remember(_with_uuid(hv, found[0], ident), hv.uri_in_use())
        self.log.info("domain %s runs here after migration from %s"
                      % (ident.name, self.invocation.migrate_source or "its source"))
        self._set_utilization(hv, found[0])
        return None


def _with_uuid(hv, dom, ident):
    """ident with the UUID libvirt reports for dom (config files may omit <uuid>)."""
    from hasf.agents.vm_config import Identity

    uuid = hv.call(dom.UUIDString, what="reading the UUID of %s" % ident.name)
    return Identity(ident.name, uuid, ident.domain_type)


main = ocf.main_for(VirtualMachine)
