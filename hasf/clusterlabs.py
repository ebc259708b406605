"""Coming from ClusterLabs' agents: every counterpart parameter, taken, changed or refused.

One table per hasf agent and ClusterLabs counterpart.  The agents refuse
what is refused here (`ResourceAgent.refused`: validate-all, start and
monitor fail with OCF_ERR_CONFIGURED and the hasf way; stop and probes go on
with a warning), `hasf-cib adopt` turns ClusterLabs resources into a hasf
spec with it, README.md's tables are rendered from it (`markdown`), and the
tests hold it against the installed ClusterLabs agents' own meta-data: a
parameter there that is in none of the three lists fails them.

taken    same name, same meaning
changed  same name, accepted, with a difference worth knowing (the note)
refused  not taken; set to anything but a harmless value it is a
         configuration problem naming the hasf way

Plain data, imported only when an agent meets a parameter it does not declare
(hasf.refusal.Refusals) and by hasf-cib adopt, the tests and the README generator.
"""

from hasf.refusal import Refused

OFF = Refused.OFF


class Counterpart:
    """The mapping of one ClusterLabs agent's parameters onto one hasf agent."""

    def __init__(self, agent, hasf, taken=(), changed=(), refused=(), note=""):
        self.agent = agent          # e.g. ocf:heartbeat:VirtualDomain
        self.hasf = hasf            # e.g. ocf:hasf:VirtualMachine
        self.taken = tuple(taken)
        self.changed = dict(changed)
        self.refused = tuple(Refused(r.name, r.instead, r.harmless, agent) for r in refused)
        self.note = note

    @property
    def names(self):
        return self.taken + tuple(self.changed) + tuple(r.name for r in self.refused)

    def status(self, name):
        """('taken'|'changed'|'refused', note) of one counterpart parameter; KeyError if unknown."""
        if name in self.taken:
            return "taken", ""
        if name in self.changed:
            return "changed", self.changed[name]
        for refusal in self.refused:
            if refusal.name == name:
                return "refused", refusal.instead
        raise KeyError(name)


class Compat:
    """Everything one hasf agent knows about its ClusterLabs counterparts."""

    def __init__(self, *counterparts):
        self.counterparts = counterparts
        seen = {}
        for counterpart in counterparts:
            for refusal in counterpart.refused:
                seen.setdefault(refusal.name, refusal)
        #: what the agent refuses, whichever counterpart the configuration came from
        self.refused = tuple(seen.values())


def R(name, instead, harmless=()):  # noqa: N802 -- reads as a table row
    return Refused(name, instead, harmless)


_XML_ON_SHARED = ("keep the domain XML on storage every node reads (the OCFS2 store); "
                  "save_config_on_stop writes it there")
_COW = ("hasf starts the domain from its XML as it is: make the copy-on-write overlay "
        "outside the agent (a qcow2 image with a backing file, named in the domain XML)")
_UTIL = ("default true as in VirtualDomain; set on start and migrate_from (VirtualDomain "
         "also re-reads it on every monitor)")
_UNSET = "removes the attribute on start and migrate_from (VirtualDomain: on every monitor)"

VIRTUAL_DOMAIN = Counterpart(
    "ocf:heartbeat:VirtualDomain", "ocf:hasf:VirtualMachine",
    taken=("hypervisor", "force_stop", "migration_transport", "migration_downtime",
           "migration_speed", "migration_network_suffix", "migrateuri", "remoteuri", "snapshot",
           "monitor_scripts"),
    changed=(
        ("shutdown_mode", "reaches libvirt (virDomainShutdownFlags); VirtualDomain 4.12 reads "
                          "OCF_RESKEY_CRM_shutdown_mode and so never passes it to virsh"),
        ("config", "not required when name is given (a domain defined in libvirt); the "
                   "domain name is read with an XML parser"),
        ("migration_user", "checked to be a user name; VirtualDomain dropped a name not "
                           "matching ^[a-z][-a-z0-9]*$ without a word"),
        ("migrateport", "used whenever migrateuri is unset (tcp://<target>:<port>); unset, "
                        "libvirt picks the port (VirtualDomain: a random one of 49152-49215)"),
        ("migrate_options", "each virsh switch becomes the libvirt flag or parameter virsh "
                            "would pass; switches hasf cannot honour (--dname, --xml, "
                            "--timeout, --offline, ...) are refused with the reason"),
        ("save_config_on_stop", "saved before stop and migrate_to, atomically (VirtualDomain: "
                                "also on every monitor and after migrate_from)"),
        ("autoset_utilization_cpu", _UTIL), ("autoset_utilization_host_memory", _UTIL),
        ("autoset_utilization_hv_memory", _UTIL),
        ("unset_utilization_cpu", _UNSET), ("unset_utilization_host_memory", _UNSET),
        ("unset_utilization_hv_memory", _UNSET),
    ),
    refused=(
        R("sync_config_on_stop", "csync2 is not run; " + _XML_ON_SHARED, (OFF,)),
        R("backingfile", _COW),
        R("stateless", _COW, (OFF,)),
        R("copyindirs", _COW + "; virt-copy-in is not run"),
        R("start_resources", "hasf does not start libvirt storage pools or networks: mark "
                             "them autostart on every node, or manage them as resources "
                             "ordered before the VM", (OFF,)),
    ))

XEN = Counterpart(
    "ocf:heartbeat:Xen", "ocf:hasf:VirtualMachine",
    taken=("monitor_scripts",),
    changed=(
        ("name", "the name of a domain defined in libvirt on every node (or leave it unset "
                 "and give the domain XML as config)"),
        ("autoset_utilization_cpu", "default true (VirtualDomain's); Xen's was false: set "
                                    "false to keep that (hasf-cib adopt does)"),
        ("autoset_utilization_hv_memory", "default true (VirtualDomain's); Xen's was false: "
                                          "set false to keep that (hasf-cib adopt does)"),
    ),
    refused=(
        R("xmfile", "hasf drives Xen through libvirt: convert the xl/xm file with `virsh -c "
                    "xen:///system domxml-from-native xen-xl FILE`, give the XML as config "
                    "and hypervisor=xen:///system"),
        R("shutdown_timeout", "the graceful shutdown gets shutdown_timeout_share percent of "
                              "the stop timeout"),
        R("shutdown_acpi", "use shutdown_mode=acpi", (OFF,)),
        R("allow_mem_management", "hasf does not balloon Dom0; size Dom0 with Xen's "
                                  "dom0_mem= boot option", (OFF,)),
        R("reserved_Dom0_memory", "hasf does not balloon Dom0; size Dom0 with Xen's dom0_mem= "
                                  "boot option", ("512",)),
        R("node_ip_attribute", "name the migration host with migration_network_suffix, or "
                               "with remoteuri/migrateuri and %n"),
    ),
    note="convert each xl/xm file to domain XML first (see xmfile)")

VIRTUAL_MACHINE = Compat(VIRTUAL_DOMAIN, XEN)

FILESYSTEM = Compat(Counterpart(
    "ocf:heartbeat:Filesystem", "ocf:hasf:Filesystem",
    taken=("directory", "fstype", "options", "statusfile_prefix", "run_fsck", "force_clones"),
    changed=(
        ("device", "an absolute path only (/dev/disk/by-uuid/... rather than -U/-L); NFS "
                   "and CIFS sources are refused"),
        ("fast_stop", "default true (ClusterLabs: no): holders get 1 s between SIGTERM and "
                      "SIGKILL; false gives them a fifth of the stop timeout (hasf-cib adopt "
                      "writes fast_stop=false out where it was unset)"),
        ("force_unmount", "true and safe mean the same: holders are found through /proc, "
                          "which never blocks"),
    )))

_OLD_LIO = ("hasf drives tgt and lio-t (LIO through configfs); ClusterLabs' older lio "
            "(lio_node/tcm_node) is not supported")
_LIO_ONLY = "lio-t only (with tgt it fails validation)"

ISCSI_TARGET = Compat(Counterpart(
    "ocf:heartbeat:iSCSITarget", "ocf:hasf:iSCSITarget",
    taken=("iqn", "allowed_initiators"),
    changed=(
        ("implementation", "tgt (default) or lio-t; lio and iet are refused. lio-t runs no "
                           "targetcli: configfs is read and written directly"),
        ("tid", "tgt: optional (ClusterLabs requires it); unset, one derived from the IQN, "
                "the same on every node, since tgt writes the tid into page 0x83 (the lowest "
                "free one, with a warning, only if another target holds it); lio-t: ignored "
                "with a warning, as ClusterLabs does"),
        ("portals", "tgt: checked against tgtd's listening portals; lio-t: every portal is "
                    "created, the default 0.0.0.0:3260 too (ClusterLabs' lio-t skips the "
                    "default one)"),
        ("incoming_username", "lio-t: CHAP is always enforced (ClusterLabs leaves "
                              "authentication=0 without allowed_initiators, so logins without "
                              "CHAP pass); refused with tgt, whose tgtadm would show the "
                              "password in its command line"),
        ("incoming_password", "lio-t: written to configfs (made 0600 first), never to a "
                              "command line (ClusterLabs passes it to targetcli in argv); "
                              "incoming_password_file as an alternative; refused with tgt"),
        ("additional_parameters", "lio-t: TPG parameters (tpgt_1/param/NAME); one LIO does not "
                                  "have fails start (ClusterLabs warns and goes on)"),
    ),
    refused=(R("iser_portals", "iSER is not supported by hasf's lio-t"),)))

ISCSI_LOGICAL_UNIT = Compat(Counterpart(
    "ocf:heartbeat:iSCSILogicalUnit", "ocf:hasf:iSCSILogicalUnit",
    taken=("target_iqn", "path", "product_id", "tgt_bstype", "tgt_bsoflags", "tgt_bsopts",
           "tgt_device_type", "emulate_tpu", "emulate_3pc", "emulate_caw"),
    changed=(
        ("implementation", "tgt (default) or lio-t; lio, iet and scst are refused"),
        ("lun", "tgt: 1 or more (LUN 0 is its controller); lio-t: 0 or more"),
        ("vendor_id", "lio-t: written to the backstore's wwn/vendor_id (ClusterLabs ignores it "
                      "with lio-t)"),
        ("scsi_id", "unset: ClusterLabs' default, the resource instance name's first 16 "
                    "characters, the same on every node (tgt's own default follows the "
                    "tid); hasf's meta-data names the rule where ClusterLabs' prints the "
                    "value for the instance that ran meta-data. lio-t: ignored with a "
                    "warning, as ClusterLabs does (LIO derives page 0x83 from the unit "
                    "serial)"),
        ("scsi_sn", "unset: ClusterLabs' default, 8 hex digits of the resource instance "
                    "name's MD5, the same on every node (tgt's own follows the tid); lio-t "
                    "writes it to the backstore's wwn/vpd_unit_serial"),
        ("allowed_initiators", "lio-t: restricts -- the LUN is mapped only into these "
                               "initiators' ACLs (ClusterLabs maps it into every existing ACL "
                               "as well); unset, into every ACL. " + _LIO_ONLY),
        ("liot_bstype", "block or fileio; pscsi is refused. fileio is write-through "
                        "(targetcli's default is write-back, which loses acknowledged writes "
                        "at failover). " + _LIO_ONLY),
        ("additional_parameters", "lio-t: backstore attributes (attrib/NAME; ClusterLabs "
                                  "ignores them with lio-t)"),
    ),
    refused=(
        R("lio_iblock", "the older lio implementation's; " + _OLD_LIO + " (lio-t makes one "
                        "HBA per backstore, as targetcli does)", ("0",)),
    )))

ISCSI_INITIATOR = Compat(Counterpart(
    "ocf:heartbeat:iscsi", "ocf:hasf:iscsi",
    taken=("target", "discovery_type", "udev", "try_recovery"),
    changed=(
        ("portal", "an IP address[:port], not a host name: sessions are matched by the "
                   "address the kernel shows"),
        ("iscsiadm", "an absolute path (default /usr/sbin/iscsiadm); ClusterLabs looked "
                     "the name up in PATH"),
    ),
    note="hasf adds CHAP, which heartbeat/iscsi lacks: username, password, password_file, "
         "username_in, password_in, password_in_file (open-iscsi's node.session.auth.* "
         "names; written to the node record, never on a command line)"))

O2CB_WAY = ("OCFS2Membership runs OCFS2's own o2cb stack (o2net and o2hb in the kernel) from "
         "its nodes parameter; there is no ocfs2_controld or dlm_controld to start")

OCFS2_MEMBERSHIP = Compat(Counterpart(
    "ocf:pacemaker:o2cb", "ocf:hasf:OCFS2Membership",
    refused=(
        R("stack", O2CB_WAY),
        R("daemon_timeout", O2CB_WAY),
        R("sysfs", "sysfs is used where the kernel mounts it, /sys", ("/sys",)),
        R("configfs", "configfs is used (and mounted if needed) at /sys/kernel/config",
          ("/sys/kernel/config",)),
    ),
    note="the pcmk-stack o2cb (with ocf:pacemaker:controld); hasf sets up the classic o2cb "
         "cluster that /etc/ocfs2/cluster.conf describes, from the CIB"))

_FENCE_COMMON = ("action", "plug", "port", "delay", "login_timeout", "power_timeout",
                 "shell_timeout", "retry_on", "quiet", "verbose", "verbose_level", "debug",
                 "debug_file", "version", "help", "plug_separator", "username", "login",
                 "password", "passwd", "password_script", "passwd_script")
_NO_EFFECT = "accepted and has no effect (hasf fences one plug per call and needs no sudo)"
_STATUS_SLEEP = ("default 0.5 s (fence-agents: 1 s) between status polls: off is seen "
                 "sooner")

FENCE_IPMILAN = Counterpart(
    "stonith:fence_ipmilan", "stonith:fence_hasf_ipmi",
    taken=_FENCE_COMMON + ("auth", "cipher", "hexadecimal_kg", "ip", "ipaddr", "ipport",
                           "privlvl", "target", "ipmitool_path", "ipmitool_timeout",
                           "port_as_ip"),
    changed=(
        ("lanplus", "default true (fence_ipmilan: false): RMCP+ unless lanplus=0; hasf-cib "
                    "adopt writes lanplus=0 out where it was unset"),
        ("method", "cycle is accepted and never used: off is always verified, then on"),
        ("power_wait", "default 0 (fence_ipmilan: 2 s): hasf polls the BMC until off is seen"),
        ("stonith_status_sleep", _STATUS_SLEEP),
        ("disable_timeout", _NO_EFFECT), ("sudo", _NO_EFFECT), ("use_sudo", _NO_EFFECT),
        ("sudo_path", _NO_EFFECT),
    ))

EXTERNAL_IPMI = Counterpart(
    "stonith:external/ipmi", "stonith:external/hasf-ipmi",
    taken=("hostname", "ipaddr", "userid", "passwd", "passwd_method"),
    changed=(("ipmitool", "unset means /usr/bin/ipmitool (external/ipmi looked it up in "
                          "PATH); used only where the built-in client does not reach"),
             ("priv", "unset means administrator, which external/ipmi left to ipmitool's "
                      "own default (the same)"),
             ("interface", "unset means lanplus (RMCP+; external/ipmi: lan); hasf-cib adopt "
                           "writes interface=lan out where it was unset"),))

_VIA_URI = ("fence_hasf_libvirt talks to libvirtd through a libvirt URI: "
            "uri=qemu+ssh://USER@HOST:PORT/system")
_SSH = "no shell session is run: " + _VIA_URI + " (ssh options in ~/.ssh/config)"

FENCE_VIRSH = Counterpart(
    "stonith:fence_virsh", "stonith:fence_hasf_libvirt",
    taken=_FENCE_COMMON + ("power_wait",),
    changed=(
        ("separator", "accepted and ignored: list prints one plug,status per line"),
        ("stonith_status_sleep", _STATUS_SLEEP),
        ("disable_timeout", _NO_EFFECT),
    ),
    refused=(
        R("ip", _VIA_URI), R("ipaddr", _VIA_URI), R("ipport", _VIA_URI, ("22",)),
        R("identity_file", _VIA_URI + "?keyfile=FILE"),
        R("ssh", _SSH, ("1", "true", "yes", "on")),
        R("secure", _SSH, ("1", "true", "yes", "on")),
        R("ssh_options", _SSH), R("ssh_path", _SSH, ("/usr/bin/ssh",)),
        R("cmd_prompt", _SSH), R("command_prompt", _SSH),
        R("inet4_only", _SSH, (OFF,)), R("inet6_only", _SSH, (OFF,)),
        R("missing_as_off", "a domain libvirt does not know is not proof of off: the device "
                            "fails instead", (OFF,)),
        R("sudo", "libvirtd is asked directly: no sudo", (OFF,)),
        R("use_sudo", "libvirtd is asked directly: no sudo", (OFF,)),
        R("sudo_path", "libvirtd is asked directly: no sudo", ("/usr/bin/sudo",)),
    ),
    note="hasf-cib adopt turns ip, ipport, login and identity_file into "
         "uri=qemu+ssh://LOGIN@IP:PORT/system?keyfile=FILE")

EXTERNAL_LIBVIRT = Counterpart(
    "stonith:external/libvirt", "stonith:external/hasf-libvirt",
    taken=("hostlist",),
    changed=(("hypervisor_uri", "defaults to qemu:///system (external/libvirt requires it)"),
             ("reset_method", "accepted; a reset is always a verified power cycle "
                              "(off, seen off, on)"),))

#: fence device -> its compatibility table
FENCE = {"fence_hasf_ipmi": Compat(FENCE_IPMILAN, EXTERNAL_IPMI),
         "fence_hasf_libvirt": Compat(FENCE_VIRSH, EXTERNAL_LIBVIRT)}

#: hasf agent type -> its compatibility table (hasf-cib adopt, tests, README)
OCF = {
    "VirtualMachine": VIRTUAL_MACHINE, "Filesystem": FILESYSTEM,
    "iSCSITarget": ISCSI_TARGET, "iSCSILogicalUnit": ISCSI_LOGICAL_UNIT,
    "iscsi": ISCSI_INITIATOR, "OCFS2Membership": OCFS2_MEMBERSHIP,
}


def counterpart_of(agent):
    """The Counterpart whose ClusterLabs agent is `agent` (class:provider:type), or None."""
    for compat in OCF.values():
        for counterpart in compat.counterparts:
            if counterpart.agent == agent:
                return counterpart
    return None


def refusal_for(agent, name):
    """The Refused entry of hasf agent `agent` (ocf:hasf:TYPE or a fence_hasf_* device) for a
    parameter name, or None: hasf-cib names the hasf way for a ClusterLabs parameter."""
    kind = agent.rsplit(":", 1)[-1]
    compat = OCF.get(kind) if agent.startswith("ocf:hasf:") else FENCE.get(kind)
    if compat is None:
        return None
    return next((r for r in compat.refused if r.name == name), None)


def _cell(text):
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def markdown(counterpart):
    """A README table: one row per ClusterLabs parameter, in the table's order."""
    lines = ["`%s` -> `%s`%s" % (counterpart.agent, counterpart.hasf,
                                 (": " + counterpart.note) if counterpart.note else ""), "",
             "| parameter | hasf | note |", "|---|---|---|"]
    for name in counterpart.names:
        status, note = counterpart.status(name)
        lines.append("| `%s` | %s | %s |" % (name, status, _cell(note)))
    return "\n".join(lines) + "\n"


def all_counterparts():
    return [c for compat in list(OCF.values()) + list(FENCE.values())
            for c in compat.counterparts]


BEGIN = ("<!-- generated from hasf/clusterlabs.py by `python3 -m hasf.clusterlabs`; "
         "tests/test_clusterlabs_compat.py holds it to that -->")
END = "<!-- end of generated tables -->"


def readme_tables():
    """The README's tables, every counterpart in order, between BEGIN and END."""
    return "\n".join([BEGIN, ""] + [markdown(c) for c in all_counterparts()] + [END]) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(readme_tables())
