"""ocf:hasf:VirtualMachine -- a libvirt domain (Xen or KVM/qemu) as a Pacemaker resource.

The agent the whole scenario exists for: the VM that runs on one node, moves
(live, when allowed) and comes back.  Anchor: heartbeat/VirtualDomain, minus
its weaknesses: one libvirt connection per run through libvirt-python
(hasf.agents.vm_libvirt, every call bounded), `shutdown_mode` that really
reaches libvirt, a remembered domain identity (state file) so stop and
probes stay right when the config on shared storage is gone, and "not
running" only when that is proven.

Modules: vm_params (parameter declarations and checks), vm_config (the
domain XML's identity), vm_store (every touch of the shared store, in a
bounded child), vm_libvirt (the bounded, error-translating libvirt
boundary), vm_stop (stop, with or without libvirtd), vm_procs (hypervisor
processes when libvirtd is unreachable), vm_migrate (live migration).
Nothing heavy is imported for meta-data; a depth-0 monitor loads only
libvirt-python's C extension (vm_libvirt.LeanHypervisor), no libvirt.py,
typing, re, subprocess, threading or lxml -- and a monitor of a domain this
node started forks nothing: it decides from the record under HA_RSCTMP.

The shared store is never touched in the agent's own process: monitor and
stop decide from the recorded identity first and read the config only when
there is no record; every config read (and the snapshot, monitor-script
and save_config_on_stop accesses) runs in a child bounded by the deadline.
A config that is not there falls back to what is known; one that cannot be
read (hung store, EIO) is "cannot tell", never "not running".

VirtualDomain's parameters keep their meaning (hasf.clusterlabs lists each
one as taken, changed or refused): monitor_scripts run on every monitor and
start/migrate_from wait for them to pass; migrate_options' virsh switches
become libvirt flags and params (vm_virsh); autoset_utilization_* default
to true.  Differences worth knowing: utilization is set on start and
migrate_from (VirtualDomain: on every monitor); a paused domain is
OCF_DEGRADED (running, needs attention), not "running" silently.
"""

import os

from hasf import ocf
from hasf.agents.vm_params import _MIGRATION_OPTIONS, ACTIONS, PARAMETERS, RELOADABLE  # noqa: F401
from hasf.agents.vm_checks import GuestChecks, Utilization
from hasf.agents.vm_stop import Stopping
from hasf.agents.vm_stop import closing as _closing
from hasf.ocf.errors import CannotTell, GenericError, NotConfigured, NotInstalled


class VirtualMachine(Stopping, GuestChecks, Utilization, ocf.ResourceAgent):
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
    parameters = PARAMETERS
    refused = ocf.Refusals("hasf.clusterlabs", "VIRTUAL_MACHINE")  # ClusterLabs' not taken
    actions = ACTIONS
    reloadable = RELOADABLE
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
        """(xml, Identity) from the config file, read in a bounded child; raises
        ConfigUnavailable (not there), NotConfigured (not a domain XML), PermissionDenied,
        or vm_store.StoreUnreadable (a CannotTell: hung store, EIO)."""
        if self._config is None:
            from hasf.agents import vm_config

            self._config = vm_config.load(self.params.config, self.deadline)
        return self._config

    def config_text(self):
        """How the config stands, for a log line: its path, or that nothing names a domain."""
        if self.params.config:
            return "config %s unavailable" % self.params.config
        return "neither config nor name is set"

    def identity(self):
        """The domain's Identity for monitor and stop, or None when nothing tells who it is.

        Order: the state file written when this node last started the domain
        (local tmpfs: no store access, no child); else the name parameter;
        else the config file.  A config that is not there, or not a domain
        XML, is no answer by itself (None: this node has not run the domain
        since boot); one that cannot be read raises, so it is never taken for
        "not running".
        """
        from hasf.agents.vm_config import ConfigUnavailable, Identity

        remembered = self.remembered()
        if self.params.name:
            if remembered and remembered.name == self.params.name:
                return remembered
            if not self.params.config:
                return Identity(self.params.name)
        elif remembered is not None:
            return remembered
        if not self.params.config:
            return None         # neither config nor name: nothing names a domain
        try:
            return self.config()[1]
        except ConfigUnavailable as exc:
            self.log.warning("%s, and this node keeps no record of the domain" % exc.message)
        except NotConfigured as exc:
            self.log.warning("config unusable (%s), and this node keeps no record of the domain"
                             % exc.message)
        return Identity(self.params.name) if self.params.name else None

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
        virsh = _switches(p)
        tunnelled = p.migration_tunnelled or "TUNNELLED" in virsh.flags
        if tunnelled and (p.migrateuri or virsh.migrateuri):
            configured.append("migrateuri (or migrate_options' --migrateuri) is not used by a "
                              "tunnelled migration; unset one of them")
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
        from hasf.agents import vm_store

        installed.extend(vm_store.check_paths(p.snapshot, (p.monitor_scripts or "").split(),
                                              self.deadline))
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
        """The domain's state from libvirt, for the identity recorded at start (no store
        access, no child: this runs every few seconds for every VM); the config is read,
        bounded, only when this node keeps no record."""
        from hasf.agents.vm_libvirt import (ACTIVE_STATES, CRASHED, PAUSED,
                                            TRANSIENT_PAUSE_REASONS, state_name)

        ident = self.identity()
        if ident is None:
            if self.invocation.is_probe or not self.params.config:
                self.log.info("%s and this node has not run the domain since boot: not "
                              "running here" % self.config_text())
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
                self._guest_agent_check(hv, dom, ident)
            failed = self._monitor_scripts(ident)
            if failed:
                raise GenericError(failed)
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
        from hasf.agents import vm_store

        if saved and vm_store.exists(saved, self.deadline.sub(fraction=0.25)):
            self.log.info("restoring domain %s from %s" % (ident.name, saved))
            hv.call(hv.conn.restore, saved, what="restoring %s from %s" % (ident.name, saved))
            # a state restored twice would roll the guest back: the file must go
            vm_store.unlink(saved, self.deadline)
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
        if not hv.wait_state(dom, lambda s: s == RUNNING, self.deadline):
            raise GenericError("domain %s did not reach 'running' within the start timeout"
                               % ident.name)
        self.remember(_with_uuid(hv, dom, ident), hv.uri_in_use())
        self.log.info("domain %s is running" % ident.name)
        self._set_utilization(hv, dom)
        self._wait_for_monitor_scripts(ident)
        return None

    def _saved_state(self, ident):
        if not self.params.snapshot:
            return None
        from hasf.ocf.state import safe_name

        return os.path.join(self.params.snapshot, safe_name(ident.name) + ".state")

    # --- reload-agent -------------------------------------------------------------------
    @_closing
    def reload_agent(self):
        """Only RELOADABLE parameters changed: the next monitor, stop or migration reads
        them; utilization now asked for is set now.  The domain must be running here."""
        ident = self.identity()
        if ident is None:
            raise GenericError("no config, name or record tells which domain to reload")
        hv = self.hypervisor()
        dom = hv.lookup(ident.name)
        if dom is None or not hv.is_active(dom):
            raise GenericError("domain %s is not running here: nothing to reload" % ident.name)
        self._set_utilization(hv, dom)
        self.log.info("domain %s: parameters reloaded, nothing restarted" % ident.name)
        return None

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
        virsh = _switches(p)
        data_uri = vm_migrate.migration_uri(target, p.migration_network_suffix,
                                            p.migrateuri or virsh.migrateuri, p.migrateport,
                                            local_uri.split(":", 1)[0])
        self._save_config(hv, dom, ident)
        persistent = bool(hv.call(dom.isPersistent, what="checking persistence"))
        words = [w.upper() for w in (p.migration_options or "").split(",") if w]
        plan = vm_migrate.Plan(hv.lv, dest_uri, data_uri,
                               p.migration_peer2peer or "PEER2PEER" in virsh.flags,
                               p.migration_tunnelled or "TUNNELLED" in virsh.flags,
                               persistent, p.migration_speed, p.migration_downtime,
                               list(dict.fromkeys(words + list(virsh.flags))), virsh.params)
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
        self._wait_for_monitor_scripts(ident)
        return None


def _switches(params):
    """migrate_options parsed (vm_virsh.MigrateOptions), an empty one when unset."""
    if params.migrate_options is not None:
        return params.migrate_options
    from hasf.agents import vm_virsh

    return vm_virsh.parse("")


def _with_uuid(hv, dom, ident):
    """ident with the UUID libvirt reports for dom (config files may omit <uuid>)."""
    from hasf.agents.vm_config import Identity

    uuid = hv.call(dom.UUIDString, what="reading the UUID of %s" % ident.name)
    return Identity(ident.name, uuid, ident.domain_type)


main = ocf.main_for(VirtualMachine)
