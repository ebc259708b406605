"""The domain's hypervisor process, seen without libvirtd.

When libvirtd cannot be asked (down, hung), a probe may still answer "not
running" -- but only with proof: no qemu process carries this domain's name
or UUID, and (on a Xen dom0) the hypervisor has no domain of that name.  A
stop may end the domain's qemu process itself rather than fail (a failed
stop gets the whole node fenced).
Only imported on those failure paths.
"""

import os
import signal

from hasf.ocf.errors import CannotTell

QEMU_NAMES = ("qemu-system-", "qemu-kvm", "kvm")


def _is_qemu(argv):
    exe = os.path.basename(argv[0]) if argv else ""
    return any(exe.startswith(n) for n in QEMU_NAMES)


def _qemu_name(value):
    """The guest name in qemu's `-name` value (libvirt: guest=NAME,debug-threads=on; ',' doubled)."""
    if value.startswith("guest="):
        value = value[len("guest="):]
    out, i = [], 0
    while i < len(value):
        if value[i] == ",":
            if value[i + 1:i + 2] == ",":
                out.append(",")
                i += 2
                continue
            break
        out.append(value[i])
        i += 1
    return "".join(out)


def matches(argv, name, uuid=None):
    """Does this qemu command line run the domain `name` (or `uuid`)?"""
    if not _is_qemu(argv):
        return False
    for flag, value in zip(argv, argv[1:]):
        if flag == "-name" and _qemu_name(value) == name:
            return True
        if flag == "-uuid" and uuid and value.lower() == uuid.lower():
            return True
    return False


def qemu_processes(name, uuid=None):
    """psutil.Process objects of every qemu running domain `name`/`uuid` on this node."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            argv = proc.info["cmdline"] or []
        except (psutil.Error, KeyError):
            continue
        if matches(argv, name, uuid):
            found.append(proc)
    return found


def xen_domain_exists(name, deadline):
    """True/False when the Xen toolstack can tell; None when there is no Xen here."""
    from hasf.runner import CommandError, run

    if not os.path.exists("/proc/xen/capabilities"):
        return None
    try:
        result = run(["xl", "domid", name], timeout=10, deadline=deadline)
    except CommandError as exc:
        raise CannotTell("libvirtd is unreachable and xl cannot tell whether domain %s runs: %s"
                         % (name, exc)) from None
    if result.rc == 0 and result.stdout.strip().isdigit():
        return True
    if "does not exist" in result.stderr or "does not exist" in result.stdout:
        return False
    raise CannotTell("libvirtd is unreachable and xl cannot tell whether domain %s runs: %s"
                     % (name, result.summary()))


def hypervisor_evidence(name, uuid, deadline):
    """A description of what runs domain `name` here, or None when provably nothing does."""
    procs = qemu_processes(name, uuid)
    if procs:
        return "qemu process %s" % ", ".join(str(p.pid) for p in procs)
    if xen_domain_exists(name, deadline):
        return "Xen domain %s" % name
    return None


def kill_qemu(name, uuid, deadline, log, grace=None):
    """End every qemu process of the domain (TERM, then KILL); True once none is left."""
    import psutil

    procs = qemu_processes(name, uuid)
    if not procs:
        return True
    grace = deadline.bound(10.0 if grace is None else grace) / 2
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in procs:
            log.warning("libvirtd is unreachable: sending %s to qemu process %d of domain %s"
                        % (signal.Signals(sig).name, proc.pid, name))
            try:
                proc.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        _gone, alive = psutil.wait_procs(procs, timeout=max(0.1, grace))
        procs = alive
        if not procs:
            return True
        grace = deadline.bound(5.0)
    return not qemu_processes(name, uuid)
