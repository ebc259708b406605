"""Runs inside a batch guest: hasf's lio-t agents against the guest kernel's LIO.

The guest's own open-iscsi logs in over 127.0.0.1 (the same kernel serves
and uses the target).  Every step is recorded -- exit code, the tail of its
stderr, seconds, what it found -- and the whole record is printed as one
JSON object for tests/test_iscsi_lio_guest.py to assert on.  Standard
library only (the guest's python3); argv: <agents dir> <block disk>.

While an agent handles a CHAP secret, a thread reads every process's
/proc/PID/cmdline in a tight loop and records any that holds a secret.
"""

import glob
import json
import os
import subprocess
import sys
import threading
import time

AGENTS, DISK = sys.argv[1], sys.argv[2]
PORTAL = "127.0.0.1:3260"
CFS = "/sys/kernel/config/target"
IQN = "iqn.2026-12.org.hasf.lio:%s"
OTHER = "iqn.2026-12.org.example:someone-else"
SECRET, WRONG, MUTUAL = "Chap-Secret-0123", "Wrong-Secret-999", "Mutual-Secret-4567"
FILE_SECRET = "File-Secret-abcdef"
RESULTS = {}
#: writes and syncs 64 KiB blocks over the disk's first 32 MiB until it fails or is killed
WRITER = """import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
block, i = b"x" * 65536, 0
while True:
    os.pwrite(fd, block, (i % 512) * 65536)
    os.fsync(fd)
    i += 1
"""
with open("/etc/iscsi/initiatorname.iscsi") as _handle:
    ME = _handle.read().split("=", 1)[1].strip()


class ArgvScan(threading.Thread):
    """Samples every process's command line until stopped; records secrets seen."""

    def __init__(self, secrets):
        super().__init__(daemon=True)
        self.secrets = [s.encode() for s in secrets]
        self.hits, self.samples, self.done = [], 0, False

    def run(self):
        while not self.done:
            for path in glob.glob("/proc/[0-9]*/cmdline"):
                try:
                    with open(path, "rb") as handle:
                        data = handle.read()
                except OSError:
                    continue
                if any(s in data for s in self.secrets):
                    self.hits.append(data.replace(b"\0", b" ").decode("utf-8", "replace"))
            self.samples += 1


def record(name, proc, started, **extra):
    RESULTS[name] = dict({"rc": proc.returncode, "err": proc.stderr[-1500:],
                          "out": proc.stdout[-1500:],
                          "seconds": round(time.monotonic() - started, 2)}, **extra)
    return proc.returncode


def run(name, argv, timeout=120, **kwargs):
    started = time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired:
        RESULTS[name] = {"rc": "timeout", "seconds": timeout}
        return None
    return record(name, proc, started)


def agent(name, kind, action, instance, timeout_ms=30000, prefix=(), **params):
    env = {"PATH": os.environ["PATH"], "OCF_ROOT": "/usr/lib/ocf", "HA_RSCTMP":
           "/run/resource-agents", "OCF_RESOURCE_INSTANCE": instance,
           "OCF_RESKEY_CRM_meta_timeout": str(timeout_ms),
           "OCF_RESKEY_implementation": "lio-t"}
    env.update({"OCF_RESKEY_" + k: str(v) for k, v in params.items()})
    return run(name, list(prefix) + [os.path.join(AGENTS, kind), action], env=env,
               timeout=timeout_ms / 1000 + 30)


def target(name, action, iqn, instance=None, **params):
    return agent(name, "iSCSITarget", action, instance or "t-" + iqn.rsplit(":", 1)[1],
                 iqn=iqn, **params)


def lun(name, action, iqn, number, instance, path=DISK, **params):
    return agent(name, "iSCSILogicalUnit", action, instance, target_iqn=iqn, lun=number,
                 path=path, **params)


def scanned(name, secrets, func):
    scan = ArgvScan(secrets)
    scan.start()
    try:
        func()
    finally:
        scan.done = True
        scan.join()
    RESULTS[name] = {"hits": scan.hits, "samples": scan.samples}


def iscsiadm(*args):
    return subprocess.run(["iscsiadm", "-m", "node"] + list(args), capture_output=True,
                          text=True, timeout=90)


def login(name, iqn, user=None, password=None, user_in=None, password_in=None):
    """A fresh node record with these CHAP settings, then a login: its exit code."""
    iscsiadm("-T", iqn, "-p", PORTAL, "-o", "delete")
    iscsiadm("-o", "new", "-T", iqn, "-p", PORTAL)
    settings = [("node.session.auth.authmethod", "CHAP" if user else "None")]
    for key, value in (("username", user), ("password", password), ("username_in", user_in),
                       ("password_in", password_in)):
        if value:
            settings.append(("node.session.auth." + key, value))
    for key, value in settings:
        iscsiadm("-T", iqn, "-p", PORTAL, "-o", "update", "-n", key, "-v", value)
    return run(name, ["iscsiadm", "-m", "node", "-T", iqn, "-p", PORTAL, "--login"])


def logout(iqn):
    iscsiadm("-T", iqn, "-p", PORTAL, "--logout")
    iscsiadm("-T", iqn, "-p", PORTAL, "-o", "delete")


def disks(iqn, wait=10.0):
    """{lun: {"dev", "pg80", "pg83"}} of the session to iqn (waiting for the scan)."""
    end = time.monotonic() + wait
    found = {}
    while time.monotonic() < end:
        for session in glob.glob("/sys/class/iscsi_session/session*"):
            with open(session + "/targetname") as handle:
                if handle.read().strip() != iqn:
                    continue
            for unit in glob.glob(session + "/device/target*/*:*:*:*"):
                number = int(unit.rsplit(":", 1)[1])
                pages = {}
                for page in ("pg80", "pg83"):
                    try:
                        with open("%s/vpd_%s" % (unit, page), "rb") as handle:
                            pages[page] = handle.read().hex()
                    except OSError:
                        pages[page] = None
                block = glob.glob(unit + "/block/*")
                found[number] = dict(pages, dev=os.path.basename(block[0]) if block else None)
        if found and all(v["dev"] for v in found.values()):
            break
        time.sleep(0.3)
    return found


def configfs_names():
    """What LIO holds: target IQNs and backstore names."""
    iqns = sorted(os.listdir(CFS + "/iscsi")) if os.path.isdir(CFS + "/iscsi") else []
    stores = sorted(n for hba in glob.glob(CFS + "/core/*_*") for n in os.listdir(hba)
                    if n not in ("hba_info", "hba_mode"))
    return {"iqns": [i for i in iqns if i.startswith("iqn.")], "stores": stores}


def chap_paths():
    """Demo-mode target with incoming + mutual CHAP: logins, then stop under I/O."""
    iqn = IQN % "chap"
    chap = {"incoming_username": "hasfuser", "incoming_password": SECRET,
            "outgoing_username": "hasftarget", "outgoing_password": MUTUAL}
    scanned("scan-chap-start", [SECRET, MUTUAL], lambda: (
        target("chap-start", "start", iqn, **chap), target("chap-monitor", "monitor", iqn,
                                                           **chap),
        lun("chap-lun-start", "start", iqn, 0, "san-lun1")))
    with open("/sys/kernel/config/target/iscsi/%s/tpgt_1/auth/password" % iqn) as handle:
        RESULTS["chap-password-file"] = {"mode": oct(os.fstat(handle.fileno()).st_mode & 0o777)}
    login("login-none", iqn)
    login("login-wrong", iqn, "hasfuser", WRONG)
    login("login-mutual-wrong", iqn, "hasfuser", SECRET, "hasftarget", WRONG)
    login("login-right", iqn, "hasfuser", SECRET, "hasftarget", MUTUAL)
    RESULTS["disks-chap"] = disks(iqn)
    dev = (RESULTS["disks-chap"].get(0) or {}).get("dev")
    writer = subprocess.Popen(["python3", "-c", WRITER, "/dev/%s" % dev],
                              stderr=subprocess.DEVNULL) if dev else None
    time.sleep(1)
    RESULTS["writing-at-stop"] = writer is not None and writer.poll() is None
    scanned("scan-chap-stop", [SECRET, MUTUAL], lambda: (
        lun("lun-stop-under-io", "stop", iqn, 0, "san-lun1", timeout_ms=30000),
        target("target-stop-sessions", "stop", iqn, timeout_ms=30000, **chap)))
    if writer is not None:
        writer.kill()
    target("chap-after", "monitor", iqn, **chap)
    lun("chap-lun-after", "monitor", iqn, 0, "san-lun1")
    RESULTS["configfs-after-chap"] = configfs_names()
    logout(iqn)


def acl_paths():
    """ACL-mode target (only this initiator), CHAP from a file; per-LU and target ACLs."""
    iqn, denied = IQN % "acl", IQN % "denied"
    with open("/run/chap.pw", "w") as handle:
        handle.write(FILE_SECRET + "\n")
    os.chmod("/run/chap.pw", 0o600)
    with open("/run/fileio.img", "wb") as handle:
        handle.truncate(32 << 20)
    chap = {"incoming_username": "fileuser", "incoming_password_file": "/run/chap.pw"}
    scanned("scan-acl", [FILE_SECRET], lambda: (
        target("acl-start", "start", iqn, allowed_initiators=ME, **chap),
        lun("acl-lun1", "start", iqn, 1, "fileio-lun", "/run/fileio.img", liot_bstype="fileio"),
        lun("acl-lun2", "start", iqn, 2, "other-lun", "/run/fileio.img", liot_bstype="fileio",
            allowed_initiators=OTHER)))
    login("acl-login", iqn, "fileuser", FILE_SECRET)
    RESULTS["disks-acl"] = disks(iqn)
    logout(iqn)
    lun("acl-lun2-stop", "stop", iqn, 2, "other-lun", "/run/fileio.img", liot_bstype="fileio",
        allowed_initiators=OTHER)
    RESULTS["acls-after-lun2-stop"] = sorted(os.listdir(
        "%s/iscsi/%s/tpgt_1/acls" % (CFS, iqn)))
    lun("acl-lun1-stop", "stop", iqn, 1, "fileio-lun", "/run/fileio.img", liot_bstype="fileio")
    target("acl-stop", "stop", iqn, allowed_initiators=ME, **chap)
    target("denied-start", "start", denied, allowed_initiators=OTHER)
    lun("denied-lun", "start", denied, 0, "denied-lun")
    login("denied-login", denied)
    logout(denied)
    lun("denied-lun-stop", "stop", denied, 0, "denied-lun")
    target("denied-stop", "stop", denied, allowed_initiators=OTHER)


def failed_starts():
    """A start the kernel refuses halfway leaves nothing in configfs."""
    bad, host = IQN % "bad", IQN % "host"
    target("bad-start", "start", bad, additional_parameters="NoSuchParameter=1")
    RESULTS["configfs-after-bad-target"] = configfs_names()
    target("host-start", "start", host)
    lun("bad-lun-start", "start", host, 0, "bad-lun", additional_parameters="no_such_attr=1")
    RESULTS["configfs-after-bad-lun"] = configfs_names()
    RESULTS["luns-after-bad-lun"] = os.listdir("%s/iscsi/%s/tpgt_1/lun" % (CFS, host))
    target("host-stop", "stop", host)


def identity_second_node():
    """The LU again (same resource name, same disk) under another IQN, with configfs
    numbered differently (another target and backstore made first): a failover."""
    dummy, other = IQN % "dummy", IQN % "failover"
    target("dummy-start", "start", dummy)
    lun("dummy-lun", "start", dummy, 0, "dummy-lun", "/run/fileio.img", liot_bstype="fileio")
    target("failover-start", "start", other)
    lun("failover-lun", "start", other, 0, "san-lun1")
    login("failover-login", other)
    RESULTS["disks-failover"] = disks(other)
    logout(other)
    return other


def unreadable_and_hung(iqn):
    """configfs that cannot be read (EACCES without CAP_DAC_OVERRIDE), then one that hangs
    (a FIFO bind-mounted over tpgt_1/enable in a private mount namespace)."""
    base = "%s/iscsi/%s" % (CFS, iqn)
    os.chmod(base, 0)
    nocaps = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]
    try:
        target("unreadable-target", "monitor", iqn, instance="t-failover", prefix=nocaps)
        lun("unreadable-lun", "monitor", iqn, 0, "san-lun1", prefix=nocaps)
    finally:
        os.chmod(base, 0o755)
    os.mkfifo("/run/hang.fifo")
    hang = ["unshare", "-m", "--propagation", "private", "python3", "-c",
            "import os, subprocess, sys; subprocess.run(['mount', '--bind', '/run/hang.fifo', "
            "sys.argv[1]], check=True); os.execvp(sys.argv[2], sys.argv[2:])",
            base + "/tpgt_1/enable"]
    target("hung-target", "monitor", iqn, instance="t-failover", prefix=hang)


#: runs argv in a private mount namespace without configfs (LIO stays loaded): a node
#: whose configfs nothing mounted (no systemd -- the lab's nodes)
BARE = ["unshare", "-m", "--propagation", "private", "python3", "-c",
        "import os, subprocess, sys; subprocess.run(['umount', '/sys/kernel/config'], "
        "check=True); os.execvp(sys.argv[1], sys.argv[1:])"]


def unmounted_configfs():
    """LIO loaded, configfs not mounted: start and stop mount it and decide; a monitor
    cannot see and says so."""
    iqn = IQN % "unmounted"
    target("unmounted-start", "start", iqn, prefix=BARE)
    RESULTS["unmounted-after-start"] = iqn in configfs_names()["iqns"]
    target("unmounted-monitor", "monitor", iqn, prefix=BARE)
    target("unmounted-stop", "stop", iqn, prefix=BARE)
    RESULTS["unmounted-after-stop"] = iqn in configfs_names()["iqns"]


def main():
    subprocess.run(["iscsid"], timeout=30)
    os.makedirs("/run/resource-agents", exist_ok=True)
    target("probe-target", "monitor", IQN % "chap")
    lun("probe-lun", "monitor", IQN % "chap", 0, "san-lun1")
    chap_paths()
    acl_paths()
    failed_starts()
    other = identity_second_node()
    unreadable_and_hung(other)
    lun("failover-lun-stop", "stop", other, 0, "san-lun1")
    target("failover-stop", "stop", other)
    lun("dummy-lun-stop", "stop", IQN % "dummy", 0, "dummy-lun", "/run/fileio.img",
        liot_bstype="fileio")
    target("dummy-stop", "stop", IQN % "dummy")
    unmounted_configfs()
    RESULTS["configfs-end"] = configfs_names()
    ocf_tester()
    print(json.dumps(RESULTS))


def ocf_tester():
    """ClusterLabs' ocf-tester on both agents (the LU's with its target running)."""
    iqn = IQN % "tester"
    run("ocf-tester-target", ["ocf-tester", "-v", "-n", "tester-target", "-o",
                              "implementation=lio-t", "-o", "iqn=" + iqn,
                              os.path.join(AGENTS, "iSCSITarget")], timeout=300)
    target("tester-target-start", "start", iqn, instance="tester-target")
    run("ocf-tester-lun", ["ocf-tester", "-v", "-n", "tester-lun", "-o", "implementation=lio-t",
                           "-o", "target_iqn=" + iqn, "-o", "lun=0", "-o", "path=" + DISK,
                           os.path.join(AGENTS, "iSCSILogicalUnit")], timeout=300)
    target("tester-target-stop", "stop", iqn, instance="tester-target")


if __name__ == "__main__":
    main()
