"""VirtualDomain's `migrate_options`: `virsh migrate` switches, read as libvirt flags and params.

ocf:heartbeat:VirtualDomain runs `virsh migrate --live $migrate_options DOMAIN
REMOTEURI MIGRATEURI`, so configurations carry virsh's switches there.  hasf
migrates through the libvirt API, so each switch is translated into what
virsh itself would hand libvirt (a VIR_MIGRATE_* flag or a typed migration
parameter), checked when the parameters are parsed -- a switch hasf cannot
honour is refused by validate-all with the hasf way, never dropped.  Like
VirtualDomain, `--migrateuri=URI` (%n: the target node) names the migration
data URI unless the `migrateuri` parameter is set.

No imports: this is parsed on every run, monitors included; the flag names
become libvirt constants only in vm_migrate.Plan.
"""

#: switch -> VIR_MIGRATE_<NAME> flag (None: nothing to pass; --live is always on)
FLAGS = {
    "--live": None, "--verbose": None,
    "--p2p": "PEER2PEER", "--tunnelled": "TUNNELLED", "--persistent": "PERSIST_DEST",
    "--undefinesource": "UNDEFINE_SOURCE", "--suspend": "PAUSED",
    "--copy-storage-all": "NON_SHARED_DISK", "--copy-storage-inc": "NON_SHARED_INC",
    "--copy-storage-synchronous-writes": "NON_SHARED_SYNCHRONOUS_WRITES",
    "--change-protection": "CHANGE_PROTECTION", "--unsafe": "UNSAFE",
    "--compressed": "COMPRESSED", "--auto-converge": "AUTO_CONVERGE",
    "--rdma-pin-all": "RDMA_PIN_ALL", "--abort-on-error": "ABORT_ON_ERROR",
    "--postcopy": "POSTCOPY", "--tls": "TLS", "--parallel": "PARALLEL",
    "--zerocopy": "ZEROCOPY",
}

_INT, _STR, _LIST = "a whole number", "a value", "a comma-separated list"

#: switch -> (libvirt VIR_MIGRATE_PARAM_* name, kind of value)
VALUES = {
    "--migrateuri": ("migrate_uri", _STR),
    "--bandwidth": ("bandwidth", _INT),
    "--postcopy-bandwidth": ("bandwidth.postcopy", _INT),
    "--listen-address": ("listen_address", _STR),
    "--graphicsuri": ("graphics_uri", _STR),
    "--migrate-disks": ("migrate_disks", _LIST),
    "--disks-port": ("disks_port", _INT),
    "--disks-uri": ("disks_uri", _STR),
    "--comp-methods": ("compression", _LIST),
    "--comp-mt-level": ("compression.mt.level", _INT),
    "--comp-mt-threads": ("compression.mt.threads", _INT),
    "--comp-mt-dthreads": ("compression.mt.dthreads", _INT),
    "--comp-xbzrle-cache": ("compression.xbzrle.cache", _INT),
    "--comp-zlib-level": ("compression.zlib.level", _INT),
    "--comp-zstd-level": ("compression.zstd.level", _INT),
    "--auto-converge-initial": ("auto_converge.initial", _INT),
    "--auto-converge-increment": ("auto_converge.increment", _INT),
    "--parallel-connections": ("parallel.connections", _INT),
    "--tls-destination": ("tls.destination", _STR),
}

#: switches hasf refuses, with the hasf way
REFUSED = {
    "--offline": "migrate_to moves a running domain; an offline migration is a stop and a start",
    "--direct": "use migration_peer2peer or migration_tunnelled (libvirtd-managed migration)",
    "--dname": "the domain keeps its name: the agent finds it by name on the target",
    "--xml": "the domain migrates with its running definition; edit config instead",
    "--persistent-xml": "the destination's definition is the running one; edit config instead",
    "--timeout": "hasf aborts a migration before the migrate_to timeout (set that timeout)",
    "--timeout-suspend": "hasf aborts a migration before the migrate_to timeout",
    "--timeout-postcopy": "hasf aborts a migration before the migrate_to timeout",
    "--postcopy-after-precopy": "hasf does not switch to post-copy; a failed post-copy loses "
                                "the guest",
    "--postcopy-resume": "resuming a failed post-copy migration is a recovery by hand",
    "--domain": "the agent names the domain itself",
    "--desturi": "the destination is remoteuri, or built from the hypervisor URI",
}

_CONTROL = frozenset(chr(c) for c in range(32)) | {"\x7f"}


class MigrateOptions:
    """virsh switches parsed: libvirt flag names, typed params, and --migrateuri."""

    def __init__(self, text, flags, params):
        self.text = text
        self.flags = tuple(flags)
        self.params = dict(params)

    @property
    def migrateuri(self):
        return self.params.get("migrate_uri")

    def __str__(self):
        return self.text

    def __bool__(self):
        return bool(self.flags or self.params)


def _value(switch, text):
    name, kind = VALUES[switch]
    if not text or set(text) & _CONTROL:
        raise ValueError("%s needs %s" % (switch, kind))
    if kind is _INT:
        if not text.isdigit():
            raise ValueError("%s needs a whole number, not %r" % (switch, text))
        return name, int(text)
    if kind is _LIST:
        return name, [item for item in text.split(",") if item]
    return name, text


def parse(text):
    """MigrateOptions from VirtualDomain's migrate_options; ValueError names what is wrong."""
    words = text.split()
    flags, params = [], {}
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        switch, equals, inline = word.partition("=")
        if switch in REFUSED:
            raise ValueError("has virsh's %s, which hasf does not take: %s"
                             % (switch, REFUSED[switch]))
        if switch in FLAGS and not equals:
            if FLAGS[switch] and FLAGS[switch] not in flags:
                flags.append(FLAGS[switch])
            continue
        if switch in VALUES:
            if not equals:
                if index >= len(words):
                    raise ValueError("has %s without its value" % switch)
                inline, index = words[index], index + 1
            name, value = _value(switch, inline)
            params[name] = value
            continue
        raise ValueError("has %r, which is not a `virsh migrate` switch hasf knows (see "
                         "hasf.agents.vm_virsh for those it takes)" % word)
    return MigrateOptions(text, flags, params)
