"""`hasf-cib adopt` for fence devices: ClusterLabs' fence agents into hasf's, or problems.

fence_ipmilan and external/ipmi become fence_hasf_ipmi / external/hasf-ipmi
(the same parameter names; what an unset parameter meant is written out
where hasf's default differs), external/libvirt becomes
external/hasf-libvirt, and fence_virsh -- which runs virsh in an ssh session
on `ip` -- becomes fence_hasf_libvirt with the libvirt URI that reaches the
same libvirtd (qemu+ssh://login@ip:ipport/system?keyfile=identity_file).
Each parameter is then checked with the hasf device's own declarations and
hasf.clusterlabs refusals; any other fence agent is kept as it is (a spec
takes any fence agent), with a note.
"""

from hasf import clusterlabs

#: ClusterLabs fence agents -> hasf's
FENCE_AGENTS = {"fence_ipmilan": "fence_hasf_ipmi", "external/ipmi": "external/hasf-ipmi",
                "external/libvirt": "external/hasf-libvirt", "fence_virsh": "fence_hasf_libvirt"}
#: what an unset parameter meant to the ClusterLabs fence agent, where hasf's default differs
UNSET_MEANS = {"fence_ipmilan": {"lanplus": "0"}, "external/ipmi": {"interface": "lan"}}
#: hasf device -> (module holding its DEFINITION, its key in hasf.clusterlabs.FENCE)
DEVICES = {"fence_hasf_ipmi": ("hasf.stonith.ipmi", "fence_hasf_ipmi"),
           "external/hasf-ipmi": ("hasf.stonith.ipmi", "fence_hasf_ipmi"),
           "fence_hasf_libvirt": ("hasf.stonith.libvirt", "fence_hasf_libvirt"),
           "external/hasf-libvirt": ("hasf.stonith.libvirt", "fence_hasf_libvirt")}
#: fence_virsh's connection parameters, all said by the URI instead
VIRSH_CONNECTION = ("ip", "ipaddr", "ipport", "login", "username", "identity_file")


def virsh_uri(params):
    """The libvirt URI of the libvirtd fence_virsh reached (its parameters consumed), or
    None when there is no host to reach."""
    host = params.pop("ip", None) or params.pop("ipaddr", None)
    params.pop("ipaddr", None)
    user = params.pop("username", None) or params.pop("login", None)
    params.pop("login", None)
    port = params.pop("ipport", "22")
    keyfile = params.pop("identity_file", None)
    if not host:
        return None
    if ":" in host and not host.startswith("["):
        host = "[%s]" % host
    return "qemu+ssh://%s%s%s/system%s" % (user + "@" if user else "", host,
                                           "" if port in ("", "22") else ":" + port,
                                           "?keyfile=" + keyfile if keyfile else "")


def _check(adopter, where, hasf_agent, params):
    """Parameters the hasf device does not take: harmless ones dropped with a note, the
    rest problems (with the hasf way where the table has one)."""
    import importlib

    module, key = DEVICES[hasf_agent]
    declared = importlib.import_module(module).DEFINITION.params
    refused = {r.name: r for r in clusterlabs.FENCE[key].refused}
    from hasf.stonith.definition import IGNORED

    for name in list(params):
        if name.startswith("pcmk_") or declared.lookup(name) is not None or name in IGNORED:
            continue
        text = params.pop(name)
        refusal = refused.get(name.replace("-", "_"))
        if refusal is not None and refusal.passes(text):
            adopter.notes.append("%s: %s=%s dropped: it asks for nothing %s does not do"
                                 % (where, name, text, hasf_agent))
        elif refusal is not None:
            adopter.problems.error(where, refusal.problem())
        else:
            adopter.problems.error(where, "parameter %s is not a parameter of %s"
                                   % (name, hasf_agent))


def _targets(adopter, where, entry, params):
    hosts = params.pop("pcmk_host_list", None)
    host_map = params.pop("pcmk_host_map", None)
    if hosts:
        entry["hosts"] = hosts.replace(",", " ").split()
    if host_map:
        pairs = [p for p in host_map.replace(",", ";").replace(" ", ";").split(";") if p]
        if not all(p.count(":") == 1 for p in pairs):
            adopter.problems.error(where, "pcmk_host_map %r is not node:port;..." % host_map)
        else:
            entry["host-map"] = dict(p.split(":", 1) for p in pairs)
    if not hosts and not host_map:
        adopter.problems.error(where, "has neither pcmk_host_list nor pcmk_host_map: a spec "
                               "names the nodes each device fences")


def fence(adopter, element, rid, agent):
    """One stonith primitive as a [[fence]] entry of the adopted spec."""
    from hasf.cib.adopt import _nvpairs

    where = "fence device %s" % rid
    params = _nvpairs(element, "instance_attributes", where, adopter.problems)
    meta = _nvpairs(element, "meta_attributes", where, adopter.problems)
    hasf_agent = FENCE_AGENTS.get(agent, agent)
    entry = {"name": rid, "agent": hasf_agent}
    for name, value in UNSET_MEANS.get(agent, {}).items():
        if name not in params:
            params[name] = value
            adopter.notes.append("%s: %s=%s written out (%s's default; hasf's differs)"
                                 % (where, name, value, agent))
    if agent == "fence_virsh":
        if any(params.get(p) for p in ("password", "passwd", "password_script",
                                         "passwd_script")):
            adopter.problems.error(where, "fence_virsh logs in to ssh with a password; a "
                                   "qemu+ssh URI needs a key: give identity_file, or write "
                                   "fence_hasf_libvirt with a qemu+libssh URI by hand")
        uri = virsh_uri(params)
        if uri is None:
            adopter.problems.error(where, "fence_virsh without ip: no host to reach")
        else:
            params["uri"] = uri
            adopter.notes.append("%s: fence_virsh's ssh session becomes uri=%s" % (where, uri))
    _targets(adopter, where, entry, params)
    if hasf_agent in DEVICES:
        _check(adopter, where, hasf_agent, params)
    elif not agent.startswith(("fence_hasf_", "external/hasf-")):
        adopter.notes.append("%s: %s kept (hasf has no counterpart; a spec takes any fence "
                             "agent)" % (where, agent))
    if params:
        entry["params"] = params
    if meta:
        entry["meta"] = meta
    if any(op.get("name") != "monitor" or op.get("interval") not in ("60s", "60", "1min")
           for op in element.iterfind("operations/op")):
        adopter.notes.append("%s: its ops are not carried over: hasf-cib build monitors every "
                             "fence device every 60s" % where)
    adopter.spec.setdefault("fence", []).append(entry)
    adopter.top[rid] = ("fence", rid)
    targets = entry.get("hosts") or list(entry.get("host-map", {}))
    if len(targets) == 1:
        adopter.implied.add(("location", rid, targets[0], "-INFINITY"))
