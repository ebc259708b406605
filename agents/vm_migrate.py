"""Live migration for the VirtualMachine agent: where to, how, and within the timeout.

Pacemaker runs `migrate_to` on the source node (OCF_RESKEY_CRM_meta_migrate_target
names the target node) and then `migrate_from` on the target.  The
destination libvirt URI is `remoteuri` (%n = target node) or the local
hypervisor URI with its host replaced by the target node, plus
`migration_transport`, `migration_user` and `migration_network_suffix`
exactly as heartbeat/VirtualDomain builds it.  The migration runs through
the libvirt API (virDomainMigrate3 when the agent drives it, or
virDomainMigrateToURI3 when libvirtd connects peer-to-peer, optionally
tunnelled) and is aborted (virDomainAbortJob) before the operation timeout:
an aborted live migration leaves the domain running on the source only.
"""

from hasf.ocf.errors import GenericError, NotConfigured, NotInstalled

#: `migration_options` words and the virDomainMigrateFlags they add (VIR_MIGRATE_<WORD>);
#: VirtualDomain's free-form `migrate_options` passed virsh switches, these are checked
OPTIONS = ("abort_on_error", "auto_converge", "compressed", "unsafe", "change_protection",
           "tls", "non_shared_disk", "non_shared_inc", "undefine_source")


def _split_uri(uri):
    """(scheme, userinfo, host, port, path_and_query) of a libvirt URI like qemu+ssh://u@h:22/system."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise NotConfigured("hypervisor URI %r has no scheme://" % uri)
    authority, slash, path = rest.partition("/")
    user, at, hostport = authority.rpartition("@")
    if not at:
        user, hostport = "", authority
    host, colon, port = hostport.partition(":")
    if hostport.startswith("["):  # [ipv6]:port
        end = hostport.find("]")
        host, port = hostport[:end + 1], hostport[end + 2:]
    return scheme, user, host, port, slash + path


def target_host(node, suffix=""):
    """The target node's migration host name: the suffix goes after the first label."""
    if not suffix:
        return node
    first, dot, rest = node.partition(".")
    return first + suffix + dot + rest


def remote_uri(local_uri, node, transport="", user="", suffix="", remoteuri=""):
    """The destination libvirt URI for target `node`."""
    host = target_host(node, suffix)
    if remoteuri:
        return remoteuri.replace("%n", host)
    scheme, _user, _host, port, path = _split_uri(local_uri)
    driver = scheme.split("+", 1)[0]
    if transport:
        driver += "+" + transport
    authority = (user + "@" if user else "") + host + (":" + port if port else "")
    return "%s://%s%s" % (driver, authority, path or "/")


def migration_uri(node, suffix="", migrateuri="", port=None, driver="qemu"):
    """The hypervisor-level URI the migration data goes to, or None (libvirt decides).

    migrateuri (the parameter, else migrate_options' --migrateuri) first; then
    migrateport; then, as VirtualDomain does, a migration network suffix sends
    qemu's (or Xen's) data to the suffixed host (libvirt picks the port: VirtualDomain's
    random one from 49152-49215 is libvirt's own range).

    Xen too: libvirt's libxl driver takes only tcp:// (or a bare HOST[:PORT], to
    which it adds tcp://).  xend's xenmigr://, which this gave for migrateport
    before, made every Xen migration with migrateport fail."""
    host = target_host(node, suffix)
    if migrateuri:
        return migrateuri.replace("%n", host)
    if port:
        return "tcp://%s:%d" % (host, port)
    if suffix and driver.startswith(("qemu", "xen")):
        return "tcp://%s" % host
    return None


class Plan:
    """Everything one migration needs, decided before anything is done."""

    def __init__(self, lv, dest_uri, data_uri, peer2peer, tunnelled, persistent,
                 bandwidth, downtime, options=(), extra=None):
        self.lv = lv
        self.dest_uri = dest_uri
        self.data_uri = data_uri
        self.peer2peer = peer2peer or tunnelled
        self.tunnelled = tunnelled
        self.persistent = persistent
        self.bandwidth = bandwidth
        self.downtime = downtime
        #: VIR_MIGRATE_<NAME> flag names (migration_options, migrate_options' switches)
        self.options = tuple(o.upper() for o in options)
        #: typed migration parameters from migrate_options (vm_virsh); its --migrateuri is data_uri
        self.extra = {k: v for k, v in (extra or {}).items() if k != "migrate_uri"}

    @property
    def flags(self):
        lv = self.lv
        flags = lv.VIR_MIGRATE_LIVE
        if self.peer2peer:
            flags |= lv.VIR_MIGRATE_PEER2PEER
        if self.tunnelled:
            flags |= lv.VIR_MIGRATE_TUNNELLED
        if self.persistent:
            flags |= lv.VIR_MIGRATE_PERSIST_DEST
        for word in self.options:
            flag = getattr(lv, "VIR_MIGRATE_" + word, None)
            if flag is None:
                raise NotInstalled("this libvirt-python has no VIR_MIGRATE_%s (asked for by "
                                   "migrate_options or migration_options)" % word)
            flags |= flag
        return flags

    @property
    def params(self):
        params = {}
        if self.data_uri and not self.tunnelled:
            params[self.lv.VIR_MIGRATE_PARAM_URI] = self.data_uri
        if self.bandwidth:
            params[self.lv.VIR_MIGRATE_PARAM_BANDWIDTH] = self.bandwidth
        params.update(self.extra)
        return params

    def describe(self):
        how = "tunnelled peer-to-peer" if self.tunnelled else (
            "peer-to-peer" if self.peer2peer else "direct")
        via = " via " + self.data_uri if self.params.get(self.lv.VIR_MIGRATE_PARAM_URI) else ""
        extra = " (%s)" % ", ".join(o.lower() for o in self.options) if self.options else ""
        return "%s live migration to %s%s%s" % (how, self.dest_uri, via, extra)


#: libvirt's libxl driver reports most failed migrations as "Failed to send migration data
#: to destination host"; libxl's own reason (e.g. "Failed to enable logdirty": a PV domU on
#: a hypervisor built without shadow paging, like Debian's) is only in its log
LIBXL_LOG = "/var/log/libvirt/libxl/libxl-driver.log"


def _hint(plan):
    """Where the cause of a failed Xen migration is written, for the exit reason."""
    if plan.dest_uri.startswith("xen"):
        return " (libxl's own reason is in %s on both nodes)" % LIBXL_LOG
    return ""


def migrate(hv, dom, plan, log):
    """Migrate dom per plan, bounded by hv.deadline; GenericError when it did not happen."""
    from hasf.agents.vm_libvirt import (CallTimeout, Hypervisor, Unreachable, call_bounded,
                                        translate)

    lv = hv.lv
    deadline = hv.deadline
    if plan.downtime:
        try:
            hv.call(dom.migrateSetMaxDowntime, plan.downtime, 0,
                    what="setting the maximum downtime", timeout=10)
        except GenericError as exc:
            log.warning("could not set migration_downtime before migrating: %s" % exc)
    dest = None
    if plan.peer2peer:
        func, args = dom.migrateToURI3, (plan.dest_uri, plan.params, plan.flags)
    else:
        dest = Hypervisor(plan.dest_uri, deadline.sub(fraction=0.25), log, lv)
        try:
            dest.connect(retry=False)
        except Unreachable as exc:
            raise GenericError("cannot migrate: %s" % exc) from None
        func, args = dom.migrate3, (dest.conn, plan.params, plan.flags)
    # keep a reserve to abort the job and report before Pacemaker's timer fires
    reserve = min(10.0, max(1.0, deadline.remaining() * 0.15))
    budget = max(0.5, deadline.remaining() - reserve)
    log.info("starting %s (up to %.0fs)" % (plan.describe(), budget))
    try:
        call_bounded(func, args, budget, "migrating %s" % dom.name())
    except CallTimeout:
        log.error("migration of %s did not finish within %.0fs: aborting it" % (dom.name(), budget))
        try:
            call_bounded(dom.abortJob, (), max(0.5, deadline.remaining() / 2), "aborting migration")
        except (lv.libvirtError, CallTimeout) as exc:
            log.error("aborting the migration failed: %s" % exc)
        raise GenericError("live migration of %s to %s did not finish within %.0fs and was "
                           "aborted" % (dom.name(), plan.dest_uri, budget)) from None
    except lv.libvirtError as exc:
        raise GenericError(str(translate(exc, "live migration of %s to %s failed"
                                         % (dom.name(), plan.dest_uri))) + _hint(plan)) from None
    finally:
        if dest is not None:
            dest.close()
