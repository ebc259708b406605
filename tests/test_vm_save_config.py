"""save_config_on_stop writes the secure XML atomically, safely, keeping mode and owner;
and the depth-0 monitor of a recorded running domain forks nothing.

Real diskless qemu domains on the host's qemu:///system libvirtd.
"""

import io
import os
import subprocess
import sys

from test_vm_common import (SYSTEM_URI, VmRun, agent_path, domains, domstate,  # noqa: F401
                            system_libvirtd, virsh, workdir, write_config)

PASSWORD = "s3cr3tvn"  # VNC allows 8 characters
NOBODY = 65534


def _xml_with_vnc_password(name):
    from lab.libvirtd import diskless_domain_xml

    return diskless_domain_xml(name).replace(
        "<memballoon model='none'/>",
        "<graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1' passwd='%s'/>"
        "<memballoon model='none'/>" % PASSWORD)


def test_save_config_on_stop_secure_atomic_keeps_mode_and_owner(agent_path, system_libvirtd,  # noqa: F811
                                                                 domains, workdir):  # noqa: F811
    """The saved XML keeps the VNC password, mode 0640 and owner; a planted link is not followed.

    Stop runs in this test's own process (hasf.ocf.main.run), so the old temporary name,
    `<config>.<pid>.tmp` with this process's pid, is predictable here, and a symlink is
    planted there pointing at a victim file.  Mutations: the old in-process
    `open("%s.%d.tmp" % (path, os.getpid()), "w")` (writes the XML through the link into
    the victim, and the new file gets mode 0644 and root's ownership); XMLDesc(0), the
    plain XML (libvirt leaves passwd out, the next start runs an unprotected VNC; libvirt
    9.0's MIGRATABLE format happens to include it too, SECURE asks for it explicitly);
    dropping the fchown/fchmod in vm_store._replace (0600, root).
    """
    from hasf.agents.virtual_machine import VirtualMachine
    from hasf.ocf import main as ocf_main

    name = domains.new("sv")
    config = write_config(workdir, name, xml=_xml_with_vnc_password(name))
    os.chown(config, NOBODY, NOBODY)
    os.chmod(config, 0o640)
    run = VmRun(agent_path, os.path.join(workdir, "rsc"), config=config, hypervisor=SYSTEM_URI,
                force_stop="true")
    assert run("start").rc == 0
    assert virsh(SYSTEM_URI, "desc", name, "--live", "--title", "saved title").returncode == 0
    victim = os.path.join(workdir, "victim")
    with open(victim, "w") as handle:
        handle.write("precious\n")
    planted = "%s.%d.tmp" % (config, os.getpid())
    os.symlink(victim, planted)

    env = run.env(interval=0, timeout=30000, params={"save_config_on_stop": "true"})
    out, err = io.StringIO(), io.StringIO()
    rc = ocf_main.run(VirtualMachine, ["VirtualMachine", "stop"], env, out, err)
    assert rc == 0, err.getvalue()
    assert domstate(SYSTEM_URI, name) is None

    with open(victim) as handle:
        assert handle.read() == "precious\n"  # the planted link was not followed
    assert os.readlink(planted) == victim
    with open(config) as handle:
        saved = handle.read()
    assert "<title>saved title</title>" in saved
    assert "passwd='%s'" % PASSWORD in saved or 'passwd="%s"' % PASSWORD in saved, saved
    st = os.lstat(config)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o640, NOBODY, NOBODY)
    os.unlink(planted)
    assert [f for f in os.listdir(workdir) if f.endswith(".tmp")] == []
    assert run("start").rc == 0  # the saved config starts the domain again, password and all
    assert PASSWORD in virsh(SYSTEM_URI, "dumpxml", "--security-info", name).stdout
    assert run("stop").rc == 0


NO_FORK = r'''
import os, sys
before = set(sys.modules)  # what site and the interpreter loaded is not the agent's
forked = []
def refuse(name):
    def call(*args, **kw):
        forked.append(name)
        raise OSError(1, "%s refused by the test" % name)
    return call
for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "execv", "execve"):
    if hasattr(os, name):
        setattr(os, name, refuse(name))
from hasf.ocf import main
from hasf.agents.virtual_machine import VirtualMachine
rc = main.run(VirtualMachine, ["VirtualMachine", "monitor"], dict(os.environ), sys.stdout,
              sys.stderr)
heavy = sorted(m for m in ("lxml", "typing", "re", "subprocess", "threading", "libvirt")
               if m in set(sys.modules) - before)
print("rc=%d forked=%s heavy=%s" % (rc, forked, heavy))
'''


def test_monitor_of_a_recorded_domain_forks_nothing(agent_path, system_libvirtd, domains,  # noqa: F811
                                                    workdir):  # noqa: F811
    """A depth-0 monitor of a running domain recorded at start: rc 0 with no child at all.

    The record makes the config read (a bounded child) unnecessary; fork and spawn are
    made to fail in the agent's process.  Mutation: identity() reading the config before
    the record -- hasf.isolated.call forks, is refused, and the monitor is not 0.
    """
    name = domains.new("nf")
    config = write_config(workdir, name)
    run = VmRun(agent_path, os.path.join(workdir, "rsc"), config=config, hypervisor=SYSTEM_URI,
                force_stop="true")
    assert run("start").rc == 0
    env = run.env()
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-c", NO_FORK], env=env, capture_output=True,
                          text=True, timeout=60, cwd=os.path.dirname(os.path.dirname(
                              os.path.abspath(__file__))))
    assert proc.stdout.strip().splitlines()[-1:] == ["rc=0 forked=[] heavy=[]"], \
        proc.stdout + proc.stderr
    assert run("stop").rc == 0
