"""PID 1 of a lab cluster node (runs in the guest; the host copies this file into the share).

Why: a node must come up the same way on every power-on, fast under TCG,
and with nothing the host cannot see: the image's init (lab/image.py
INIT_SCRIPT) mounts the 9p share and runs this file from it, so changing the
node's start-up needs no image rebuild.  It sets the node up from
``node.json`` (hostname, /etc/hosts, NICs by MAC, files such as
corosync.conf and the BMC password, root's authorized key), lays the hasf
install tree (``make install DESTDIR=...`` on the host) over /, starts sshd
(the host's control channel), corosync and pacemakerd, records their pids
and the boot id in the share, and then only reaps children.  Nothing
restarts a daemon that dies: a node whose cluster stack was killed stays
broken until it is fenced, as a real one would.

Every external command has a timeout; an error before the daemons run
powers the node off (the init's ``finally``), which the host sees as a
qemu that ended.
"""

import json
import os
import shutil
import subprocess
import time

SHARE = globals().get("SHARE", "/mnt/hasf")
CONTROL = os.path.join(SHARE, ".hasf-guest")
BASE_MODULES = ("virtio_net",)
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def uptime():
    with open("/proc/uptime") as handle:
        return float(handle.read().split()[0])


def log(message):
    line = "[%8.2f] hasf-node: %s" % (uptime(), message)
    print(line, flush=True)
    with open(os.path.join(CONTROL, "node.log"), "a") as handle:
        handle.write(line + "\n")


def write_json(name, data):
    path = os.path.join(CONTROL, name)
    with open(path + ".tmp", "w") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(path + ".tmp", path)


def quiet(argv, timeout=30):
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, env={"PATH": PATH})
        return proc.returncode, proc.stderr.decode("utf-8", "replace")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)


def mount(fstype, target, options="defaults"):
    os.makedirs(target, exist_ok=True)
    if os.path.ismount(target):
        return
    code, err = quiet(["mount", "-n", "-t", fstype, "-o", options, fstype, target])
    if code != 0:
        raise RuntimeError("mount %s on %s: %s" % (fstype, target, err))


def write_file(path, text, mode=0o644, owner=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as handle:
        handle.write(text)
    os.chmod(path + ".tmp", mode)
    if owner:
        shutil.chown(path + ".tmp", *owner)
    os.replace(path + ".tmp", path)


def interface_with(mac):
    for name in sorted(os.listdir("/sys/class/net")):
        with open("/sys/class/net/%s/address" % name) as handle:
            if handle.read().strip().lower() == mac.lower():
                return name
    raise RuntimeError("no interface with MAC %s" % mac)


def setup(cfg):
    for fstype, target, options in (("devpts", "/dev/pts", "gid=5,mode=620"),
                                    ("tmpfs", "/dev/shm", "mode=1777"),
                                    ("tmpfs", "/run", "mode=755"),
                                    ("tmpfs", "/tmp", "mode=1777")):
        mount(fstype, target, options)
    for path in ("/run/lock", "/run/sshd", "/var/run/crm", "/var/log/libvirt/qemu"):
        os.makedirs(path, exist_ok=True)
    with open("/proc/sys/kernel/hostname", "w") as handle:
        handle.write(cfg["hostname"])
    write_file("/etc/hostname", cfg["hostname"] + "\n")
    write_file("/etc/hosts", "127.0.0.1 localhost\n" + "".join(
        "%s %s\n" % (address, name) for name, address in sorted(cfg["hosts"].items())))
    for module in BASE_MODULES:
        quiet(["modprobe", module], timeout=120)
    quiet(["ip", "link", "set", "lo", "up"])
    for nic in cfg["nics"]:
        name = interface_with(nic["mac"])
        steps = [["ip", "link", "set", name, "up"], ["ip", "addr", "add", nic["address"], "dev", name]]
        if nic.get("gateway"):
            steps.append(["ip", "route", "add", "default", "via", nic["gateway"], "dev", name])
        for argv in steps:
            code, err = quiet(argv)
            if code != 0:
                raise RuntimeError("%s: %s" % (" ".join(argv), err.strip()))
    install = os.path.join(SHARE, "install")
    if os.path.isdir(install):
        shutil.copytree(install, "/", symlinks=True, dirs_exist_ok=True)
    for item in cfg["files"]:
        owner = tuple(item["owner"]) if item.get("owner") else None
        with open(os.path.join(SHARE, item["source"])) as handle:
            write_file(item["path"], handle.read(), int(item["mode"], 8), owner)


#: daemons a node may run before its cluster stack: argv, and a command that says it is ready
SERVICES = {
    # udev makes the /dev/disk/by-path links the stores are named by
    "udevd": (["/lib/systemd/systemd-udevd"], ["udevadm", "control", "--ping"]),
    "iscsid": (["iscsid", "-f"], None),
    "tgtd": (["tgtd", "-f"], ["tgtadm", "--lld", "iscsi", "--mode", "sys", "--op", "show"]),
    "virtlogd": (["virtlogd"], None),
    # not waited for: its first start probes qemu's capabilities (~90 s under TCG, cached
    # on the node's disk for later boots); the lab waits for it before vm1 is needed
    "libvirtd": (["libvirtd"], None),
}


def start_services(names, env, pids):
    for name in names:
        argv, ready = SERVICES[name]
        pids[name] = start(name, argv, env)
        if ready and not wait_for(ready, 90):
            log("%s did not answer in 90 s" % name)
        if name == "udevd":   # coldplug the disks that are already there (vdb: the LUN)
            quiet(["udevadm", "trigger", "--action=add", "--subsystem-match=block"])
            quiet(["udevadm", "settle", "--timeout=30"], timeout=40)


def ensure_system_user(name):
    """A system user and group of that name (libvirt's qemu driver refuses to start
    without its default user, which only libvirt-daemon-system's postinst makes)."""
    if quiet(["getent", "group", name])[0] != 0:
        quiet(["groupadd", "--system", name])
    if quiet(["getent", "passwd", name])[0] != 0:
        quiet(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
               "--gid", name, "--shell", "/usr/sbin/nologin", name])


def start(name, argv, env):
    logfile = "/var/log/hasf-node-%s.log" % name
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd="/")
    log("started %s pid %d" % (name, proc.pid))
    return proc.pid


def wait_for(argv, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if quiet(argv, timeout=10)[0] == 0:
            return True
        time.sleep(0.5)
    return False


def main():
    with open(os.path.join(CONTROL, "node.json")) as handle:
        cfg = json.load(handle)
    with open("/proc/sys/kernel/random/boot_id") as handle:
        boot_id = handle.read().strip()
    log("boot %s, userland at %.2fs" % (boot_id, uptime()))
    setup(cfg)
    env = {"PATH": PATH, "LANG": "C.UTF-8", "HOME": "/root",
           "PCMK_logfile": "/var/log/pacemaker/pacemaker.log"}
    pids = {"boot_id": boot_id}
    for user in cfg.get("system_users", ()):
        ensure_system_user(user)
    for module in cfg.get("modules", ()):
        code, err = quiet(["modprobe", module], timeout=120)
        if code != 0:
            log("modprobe %s: %s" % (module, err.strip()))
    pids["sshd"] = start("sshd", ["/usr/sbin/sshd", "-D", "-e"], env)
    start_services(cfg.get("services", ()), env, pids)
    if cfg.get("cluster", True):
        pids["corosync"] = start("corosync", ["corosync", "-f"], env)
        if not wait_for(["corosync-cfgtool", "-s"], 60):
            log("corosync did not answer in 60 s")
        pids["pacemakerd"] = start("pacemakerd", ["pacemakerd", "-f"], env)
    pids["ready_at"] = uptime()
    write_json("pids.json", pids)
    with open(os.path.join(CONTROL, "boots.log"), "a") as handle:
        handle.write(json.dumps(pids) + "\n")
    log("node up: %s" % json.dumps(pids))
    named = {pid: name for name, pid in pids.items() if isinstance(pid, int)}
    while True:  # PID 1: reap every orphan, report the daemons that end
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            time.sleep(1)
            continue
        if pid in named:
            log("%s (pid %d) ended, status %d" % (named[pid], pid, status))


main()
