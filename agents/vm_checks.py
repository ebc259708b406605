"""VirtualMachine's work beside libvirt: guest checks and the resource's utilization.

Both follow ocf:heartbeat:VirtualDomain, whose configurations carry over
(hasf.clusterlabs): `monitor_scripts` run on every monitor while the domain
runs, and start/migrate_from end only once they pass; utilization attributes
are set from the domain (autoset_utilization_*, default true) or removed
(unset_utilization_*).  Mixins of the agent class: they use its params,
invocation, deadline and log, and import the runner only when there is work.
"""

from hasf.ocf.errors import GenericError, NotInstalled


class GuestChecks:
    """monitor_scripts and the depth-10 guest agent ping."""

    def _guest_agent_check(self, hv, dom, ident):
        if not self.params.guest_agent_check:
            return
        try:
            import libvirt_qemu
        except ImportError:
            raise NotInstalled("guest_agent_check needs libvirt_qemu (libvirt-python)") from None
        hv.call(libvirt_qemu.qemuAgentCommand, dom, '{"execute":"guest-ping"}', 5, 0,
                what="pinging the guest agent of %s" % ident.name, timeout=10)

    def _monitor_scripts(self, ident):
        """None when every monitor script passed, else why the first one failed.

        As in VirtualDomain: one after another, no arguments, the agent's own
        environment (OCF_RESKEY_*, OCF_RESOURCE_INSTANCE) plus HASF_DOMAIN_NAME;
        each bounded by the operation's deadline."""
        scripts = (self.params.monitor_scripts or "").split()
        if not scripts:
            return None
        from hasf.runner import CommandError, run

        for script in scripts:
            try:
                result = run([script], env={"HASF_DOMAIN_NAME": ident.name},
                             base_env=self.invocation.environ, deadline=self.deadline,
                             log=self.log)
            except CommandError as exc:
                return "monitor script %s: %s" % (script, exc.message)
            if result.rc != 0:
                return "monitor script for domain %s failed: %s" % (ident.name,
                                                                    result.summary())
        return None

    def _wait_for_monitor_scripts(self, ident):
        """Start and migrate_from end only once the monitor scripts pass (VirtualDomain
        loops on its monitor): retried every second within the operation's timeout."""
        if not (self.params.monitor_scripts or "").strip():
            return
        failed = []

        def passed():
            failed[:] = [self._monitor_scripts(ident)]
            return failed[0] is None

        if not self.deadline.wait_for(passed, 1.0, 1.0):
            raise GenericError("domain %s runs, but its monitor scripts did not pass within the "
                               "%s timeout: %s" % (ident.name, self.invocation.action,
                                                   failed[0] if failed else "no time left"))


class Utilization:
    """autoset_utilization_* / unset_utilization_*, through crm_resource -z."""

    def _set_utilization(self, hv, dom):
        """Utilization as VirtualDomain keeps it: autoset_utilization_X sets X from the
        domain, else unset_utilization_X removes it.  The cluster not answering (no CIB
        here) is logged at debug level and ends the attempt, as in VirtualDomain."""
        p = self.params
        wanted = []
        if p.autoset_utilization_cpu or p.autoset_utilization_hv_memory \
                or p.autoset_utilization_host_memory:
            _state, max_mem, _mem, vcpus, _cpu = hv.call(dom.info, what="reading domain info")
        for attr in ("cpu", "hv_memory", "host_memory"):
            if getattr(p, "autoset_utilization_" + attr):
                wanted.append((attr, str(vcpus if attr == "cpu" else max_mem // 1024)))
            elif getattr(p, "unset_utilization_" + attr):
                wanted.append((attr, None))
        if not wanted:
            return
        if not self.invocation.instance:
            self.log.warning("no OCF_RESOURCE_INSTANCE: cannot set utilization")
            return
        for attr, value in wanted:
            if not self._utilization(attr, value):
                return

    def _utilization(self, attr, value):
        """Set (value) or delete (None) one utilization attribute; False when the cluster
        cannot be reached (crm_resource exit 102), so the others are not tried."""
        from hasf.runner import CommandError, run

        argv = ["crm_resource", "-r", self.invocation.instance, "-z"]
        argv += ["-p", attr, "-v", value] if value is not None else ["-d", attr]
        what = "setting" if value is not None else "removing"
        try:
            result = run(argv, timeout=10, deadline=self.deadline, log=self.log)
        except CommandError as exc:
            self.log.warning("%s utilization %s: %s" % (what, attr, exc.message))
            return True
        if result.rc == 102:
            self.log.debug("%s utilization %s: the CIB is not available here" % (what, attr))
            return False
        if not result.ok and not (value is None and result.rc == 105):
            self.log.warning("%s utilization %s: %s" % (what, attr, result.summary()))
        return True
