"""VirtualMachine's stop: graceful, saved or destroyed, and without libvirtd if need be.

Split out of virtual_machine.py because stop is its own job with its own
rules: success only when libvirt -- or, without libvirtd, the process table
-- shows the domain is not running; every libvirt call capped so a hung
libvirtd leaves time to end qemu directly; and the config store touched only
for save_config_on_stop, in a bounded child (vm_store).

`Stopping` is a mixin of hasf.agents.virtual_machine.VirtualMachine: it uses
the agent's identity(), hypervisor(), params, deadline and log.
"""

from hasf.ocf.errors import GenericError, NotConfigured, NotInstalled


def closing(handler):
    """Close the run's libvirt connection when the action's handler is done (clean logout
    instead of a connection reset at exit)."""
    def action(self):
        try:
            return handler(self)
        finally:
            self.close_hypervisor()
    action.__name__, action.__doc__ = handler.__name__, handler.__doc__
    return action


class Stopping:
    @closing
    def stop(self):
        """Stop the domain; success only when libvirt (or, without libvirtd, the process
        table) shows it is not running.  Every libvirt call is capped at a quarter of the
        stop timeout, so a libvirtd that hangs leaves time to end qemu directly."""
        from hasf.agents.vm_libvirt import BadURI, CallTimeout, Unreachable

        ident = self.identity()
        if ident is None:
            self.log.info("%s and this node has not run the domain since boot: nothing to "
                          "stop" % self.config_text())
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
        """save_config_on_stop: the domain's secure, migratable XML back into the config file.

        Secure: without VIR_DOMAIN_XML_SECURE libvirt leaves out graphics
        passwords, and the next start would run the guest without one.
        """
        if not (self.params.save_config_on_stop and self.params.config):
            return
        from hasf.agents import vm_store

        path = self.params.config
        try:
            xml = hv.call(dom.XMLDesc, hv.lv.VIR_DOMAIN_XML_SECURE
                          | hv.lv.VIR_DOMAIN_XML_MIGRATABLE,
                          what="reading the XML of %s" % ident.name, timeout=10)
            # a share of what is left: a hung store must not eat the time the stop needs
            if vm_store.replace(path, xml.encode("utf-8"), self.deadline.sub(fraction=0.2,
                                                                              seconds=10)):
                self.log.info("saved the XML of domain %s to %s" % (ident.name, path))
        except (GenericError, NotConfigured) as exc:
            self.log.warning("save_config_on_stop: could not write %s: %s"
                             % (path, exc.message))

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
                if hv.wait_state(dom, inactive, graceful, 0.2, 1.0):
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
        from hasf.agents import vm_store
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
            try:  # a partial image must not be restored by the next start
                vm_store.unlink(path, self.deadline.sub(fraction=0.2, seconds=5))
            except vm_store.StoreUnreadable as failed:
                self.log.warning("%s: the next start may find a partial saved state"
                                 % failed.message)
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
        """End the domain ourselves: its qemu processes, success only once their /proc
        entries are gone (vm_procs.kill_qemu), never because a command line stopped
        matching; on a Xen dom0, `xl destroy`, success only once xl says the domain no
        longer exists."""
        from hasf.agents.vm_procs import destroy_xen_domain, hypervisor_evidence, kill_qemu

        evidence = hypervisor_evidence(ident.name, ident.uuid, self.deadline)
        if evidence is None:
            self.log.warning("%s; no hypervisor process for domain %s here: it is stopped"
                             % (exc.message, ident.name))
            return None
        if not self.params.stop_without_libvirtd:
            raise GenericError("%s, and %s still runs domain %s: cannot stop it"
                               % (exc.message, evidence, ident.name))
        if evidence.xen:
            if destroy_xen_domain(ident.name, self.deadline, self.log):
                self.log.warning("domain %s stopped by xl destroy (libvirtd unreachable)"
                                 % ident.name)
                return None
        elif kill_qemu(evidence.pids, ident.name, self.deadline, self.log):
            self.log.warning("domain %s stopped by ending its qemu process (libvirtd unreachable)"
                             % ident.name)
            return None
        what = evidence.text if evidence.xen else "domain %s's %s" % (ident.name, evidence)
        raise GenericError("%s, and %s did not end" % (exc.message, what))
