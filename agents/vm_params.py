"""The VirtualMachine agent's parameters: declarations and their value checks.

Kept apart from the agent's logic so virtual_machine.py reads as what the
agent does; meta-data and every action import this (it needs nothing but
hasf.ocf), so it stays free of heavy imports.  Every check is a set test on
characters: no `re` on the monitor path, and no value is ever handed to a
shell, so the checks keep out what libvirt itself would misread.
"""

from hasf import ocf
from hasf.ocf.params import Checked as _Checked
from hasf.ocf.params import ParamType as _ParamType

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



class _VirshSwitches(_ParamType):
    """VirtualDomain's migrate_options, parsed into libvirt flags and params (vm_virsh)."""

    hint = "virsh migrate switches such as --compressed --auto-converge --migrateuri=tcp://%n"

    def parse(self, text):
        from hasf.agents import vm_virsh  # only when the parameter is set

        return vm_virsh.parse(text)


def _utilization(attr, what):
    return (
        ocf.Parameter(
            "autoset_utilization_" + attr, ocf.Boolean(), default=True,
            shortdesc="Set utilization '%s' from the domain" % attr,
            longdesc="On start and migrate_from, set the resource's utilization attribute %s "
                     "to the domain's %s (crm_resource -z), as VirtualDomain does by "
                     "default." % (attr, what)),
        ocf.Parameter(
            "unset_utilization_" + attr, ocf.Boolean(), default=False,
            shortdesc="Remove utilization '%s'" % attr,
            longdesc="When autoset_utilization_%s is false: remove the resource's "
                     "utilization attribute %s on start and migrate_from." % (attr, attr)),
    )


def _uri_param(name, shortdesc, longdesc, pct_n=False):
    hint = "a libvirt URI such as qemu+ssh://%n/system" if pct_n else \
        "a libvirt URI such as xen:///system or qemu:///system"
    return ocf.Parameter(name, _Checked(_is_uri, hint), shortdesc=shortdesc, longdesc=longdesc)



PARAMETERS = (
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
                 "back to the config file, so changes made to the running domain survive: "
                 "the secure XML (graphics passwords kept), through a new temporary file in "
                 "the same directory that keeps the file's mode and owner, fsync'd and "
                 "renamed over it; only when it changed; a failure is logged, never fails "
                 "the stop."),
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
                 "stop on I/O errors."),
    ocf.Parameter(
        "migrate_options", _VirshSwitches(),
        shortdesc="virsh migrate switches (VirtualDomain's)",
        longdesc="VirtualDomain's extra `virsh migrate` switches, given to libvirt as the "
                 "flags and migration parameters virsh would pass (--compressed, "
                 "--auto-converge, --copy-storage-all, --bandwidth N, --migrate-disks a,b, "
                 "--listen-address A, ...); --migrateuri=URI (%n: the target node) is the "
                 "migration data URI unless migrateuri is set. A switch hasf cannot honour "
                 "(--dname, --xml, --timeout, --offline, ...) is refused with the reason."),
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
        default="", shortdesc="Guest check programs (every monitor)",
        longdesc="Programs run one after another by every monitor while the domain runs, as "
                 "VirtualDomain does (no arguments; the agent's environment plus "
                 "HASF_DOMAIN_NAME); a non-zero exit fails the monitor. Start and "
                 "migrate_from succeed only once they all pass: give those operations time "
                 "for it."),
    ocf.Parameter(
        "guest_agent_check", ocf.Boolean(), default=False,
        shortdesc="Ping the qemu guest agent (depth 10)",
        longdesc="A monitor with OCF_CHECK_LEVEL=10 pings the qemu guest agent "
                 "(guest-ping); no answer fails the monitor. qemu/KVM only."),
    *_utilization("cpu", "vCPU count"),
    *_utilization("hv_memory", "maximum memory in MiB"),
    *_utilization("host_memory", "maximum memory in MiB"),
    ocf.Parameter(
        "stop_without_libvirtd", ocf.Boolean(), default=True,
        shortdesc="Stop the domain directly when libvirtd is unreachable",
        longdesc="When libvirtd cannot be reached during stop, end the domain's qemu process "
                 "directly (SIGTERM, then SIGKILL) and succeed once it is gone -- on a Xen "
                 "dom0, destroy the domain with xl and succeed once xl no longer lists it -- "
                 "instead of failing the stop (which makes Pacemaker fence the whole node). "
                 "false: stop fails while the domain runs."),
)

ACTIONS = (
    ocf.Action("start", 90), ocf.Action("stop", 90),
    ocf.Action("status", 30, interval=10, depth=0),
    ocf.Action("monitor", 30, interval=10, depth=0),
    ocf.Action("migrate_to", 120), ocf.Action("migrate_from", 60),
    ocf.Action("reload-agent", 30), ocf.Action("validate-all", 30),
)

#: Parameters a running domain takes without a restart (reload-agent): each is read only by
#: the operation that uses it -- monitor, stop, migrate_to -- and the utilization asked for
#: is set by the reload itself.  Restarting the VM to apply them would be the outage they
#: are meant to avoid.
RELOADABLE = (
    "monitor_scripts", "guest_agent_check",
    "force_stop", "shutdown_mode", "shutdown_timeout_share", "save_config_on_stop",
    "stop_without_libvirtd",
    "migration_transport", "migration_user", "migration_network_suffix", "remoteuri",
    "migrateuri", "migrateport", "migration_peer2peer", "migration_tunnelled",
    "migration_options", "migration_speed", "migration_downtime",
    "migrate_options",
    "autoset_utilization_cpu", "autoset_utilization_hv_memory",
    "autoset_utilization_host_memory",
    "unset_utilization_cpu", "unset_utilization_hv_memory", "unset_utilization_host_memory",
)
