"""The domain's hypervisor process, seen without libvirtd.

When libvirtd cannot be asked (down, hung), a probe may still answer "not
running" -- but only with proof: no qemu process carries this domain's name
or UUID, no process's command line was unreadable (it could be that qemu),
and (on a Xen dom0, xenfs mounted or not) the hypervisor has no domain of
that name.  A stop may
end the domain's qemu process itself rather than fail (a failed stop gets
the whole node fenced), and succeeds only once the processes it matched are
gone -- judged by their /proc entries, never by matching command lines
again: a qemu whose main thread has exited while another thread is stuck on
a dead store has an empty command line and would "vanish" from a re-match.

The raw /proc reads live in hasf.kernel.processes; this module decides what
they mean for a domain.  Only imported on those failure paths.
"""

import os
import signal

from hasf.kernel import CannotRead
from hasf.kernel import processes
from hasf.kernel.attrs import read_attr
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


def argv_of(pid):
    """The command line that identifies process pid; None when there is nothing to identify.

    Nothing to identify: the process is gone, is a kernel thread, or has
    finished exiting (a zombie whose threads are all dead holds nothing).
    An empty command line of a process with a live thread (its main thread
    exited, another is stuck in the kernel) is read through that thread,
    which still shares the process's memory; if no thread shows one, the
    process cannot be identified: CannotRead, never "not qemu".
    """
    argv = processes.cmdline(pid)
    if argv:
        return argv
    if argv is None or processes.is_kernel_thread(pid) is not False:
        return None
    for tid in processes.threads(pid) or ():
        if tid != pid:
            argv = processes.cmdline(pid, tid)
            if argv:
                return argv
    if not processes.alive(pid):
        return None
    raise CannotRead("the command line of process %d (empty, while a thread of it lives)"
                     % pid)


class Scan:
    """The result of one pass over the process table for one domain."""

    def __init__(self, matched, unreadable):
        self.matched = matched          # pids whose command line runs the domain
        self.unreadable = unreadable    # (pid, reason) of processes that could not be identified


def scan(name, uuid=None):
    """Every process that runs domain `name`/`uuid`, and every one that could not be read."""
    try:
        pids = processes.pids()
    except CannotRead as exc:
        return Scan([], [(None, exc.message)])
    matched, unreadable = [], []
    for pid in pids:
        try:
            argv = argv_of(pid)
        except CannotRead as exc:
            unreadable.append((pid, exc.message))
            continue
        if argv and matches(argv, name, uuid):
            matched.append(pid)
    return Scan(matched, unreadable)


def qemu_processes(name, uuid=None):
    """The pids of every qemu process running domain `name`/`uuid` on this node."""
    return scan(name, uuid).matched


def xen_control_domain():
    """Whether this node is (or may be) a Xen dom0, whose domains run without a qemu process.

    xenfs's /proc/xen/capabilities says so ("control_d") when it is mounted,
    but nothing needs it mounted (xl and libvirt's libxl use /dev/xen), so
    without it the kernel's sysfs decides: under Xen (/sys/hypervisor/type)
    any guest but an HVM one may be the control domain (PV and PVH dom0s
    exist; an HVM guest never is one).  CannotRead when a file could not be
    read.
    """
    capabilities = read_attr("/proc/xen/capabilities")
    if capabilities is not None:
        return "control_d" in capabilities.split()
    if read_attr("/sys/hypervisor/type") != "xen":
        return False
    return read_attr("/sys/hypervisor/guest_type") != "HVM"


def xen_domain_exists(name, deadline):
    """True/False when the Xen toolstack can tell; None when this is no Xen dom0."""
    from hasf.runner import CommandError, run

    try:
        if not xen_control_domain():
            return None
    except CannotRead as exc:
        raise CannotTell("libvirtd is unreachable and whether this is a Xen dom0 is unknown: "
                         "%s" % exc.message) from None
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


def destroy_xen_domain(name, deadline, log):
    """`xl destroy` domain `name` while libvirtd is unreachable; True once xl says it no
    longer exists (CannotTell when xl cannot say), None when that did not come in time."""
    from hasf.runner import CommandError, run

    log.warning("libvirtd is unreachable: destroying Xen domain %s with xl" % name)
    try:
        result = run(["xl", "destroy", name], timeout=deadline.bound(30.0), deadline=deadline)
        if result.rc != 0:
            log.error("xl destroy %s: %s" % (name, result.summary()))
    except CommandError as exc:
        log.error("xl destroy %s: %s" % (name, exc))
    return deadline.wait_for(lambda: xen_domain_exists(name, deadline) is False, 0.2, 1.0)


class Evidence:
    """What runs domain `name` here: qemu pids (to end them) or a Xen domain, and a
    description."""

    def __init__(self, text, pids=(), xen=False):
        self.text, self.pids, self.xen = text, list(pids), xen

    def __str__(self):
        return self.text


def hypervisor_evidence(name, uuid, deadline):
    """Evidence of what runs domain `name` here, or None when provably nothing does.

    CannotTell when a process could not be identified: it might be this
    domain's qemu, so its absence is not proven.
    """
    found = scan(name, uuid)
    if found.matched:
        return Evidence("qemu process %s" % ", ".join(str(p) for p in found.matched),
                        found.matched)
    if found.unreadable:
        raise CannotTell("cannot tell whether a qemu process runs domain %s: %s" % (
            name, "; ".join(reason for _pid, reason in found.unreadable[:3])))
    if xen_domain_exists(name, deadline):
        return Evidence("Xen domain %s" % name, xen=True)
    return None


def _still_alive(pids):
    """The pids that still exist with a live thread; an unreadable one counts as alive."""
    left = []
    for pid in pids:
        try:
            if processes.alive(pid):
                left.append(pid)
        except CannotRead:
            left.append(pid)
    return left


def kill_qemu(pids, name, deadline, log, grace=None):
    """End the qemu processes `pids` of domain `name` (TERM, then KILL); True once all are gone.

    "Gone" is /proc/PID gone (or only a zombie with no live thread left),
    waited for within the deadline.  Once matched, a pid is not matched
    again: a dying qemu's command line is empty.
    """
    left = _still_alive(pids)
    grace = deadline.bound(10.0 if grace is None else grace) / 2
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in left:
            log.warning("libvirtd is unreachable: sending %s to qemu process %d of domain %s"
                        % (signal.Signals(sig).name, pid, name))
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        within = deadline.sub(seconds=max(0.1, grace)) if sig == signal.SIGTERM else deadline
        if within.wait_for(lambda: _ended(left), 0.05, 0.5):
            return True
    return False


def _ended(pids):
    """True when none of pids is alive; else pids keeps only the live ones."""
    pids[:] = _still_alive(pids)
    return not pids
