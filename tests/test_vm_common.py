"""Helpers shared by the VirtualMachine tests (no tests of its own).

`agent_path` is the agent as an executable launched exactly like an
installed one; `VmRun` runs one action of it with a pacemaker-execd-like
environment, bounded; `Domains` hands out `hasfvm-` domain names and always
destroys/undefines them afterwards, on every libvirtd it was told about.
"""

import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

from lab.ocfrun import AgentRun
from testagents import install_test_agent

SYSTEM_URI = "qemu:///system"


@pytest.fixture(scope="session")
def agent_path():
    directory = tempfile.mkdtemp(prefix="hasf-vm-agent-")
    os.chmod(directory, 0o755)
    yield install_test_agent(directory, "VirtualMachine", "hasf.agents.virtual_machine")
    shutil.rmtree(directory, ignore_errors=True)


class VmRun(AgentRun):
    """Run actions of the VirtualMachine agent for one resource instance."""

    def __init__(self, agent, rsctmp, instance="vm1", **params):
        super().__init__(agent, rsctmp, instance, "VirtualMachine", **params)


def virsh(uri, *args, timeout=60):
    return subprocess.run(["virsh", "-c", uri] + list(args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def domstate(uri, name):
    """'running', 'shut off', ... or None when the domain is not defined there."""
    proc = virsh(uri, "domstate", name, timeout=30)
    return proc.stdout.strip() if proc.returncode == 0 else None


class Domains:
    """Unique hasfvm- domain names, cleaned up on every registered URI."""

    def __init__(self):
        self.names = []
        self.uris = [SYSTEM_URI]

    def new(self, tag="t"):
        name = "hasfvm-%s-%d-%s" % (tag, os.getpid(), uuid.uuid4().hex[:6])
        self.names.append(name)
        return name

    def cleanup(self):
        for uri in self.uris:
            for name in self.names:
                for verb in ("destroy", "undefine"):
                    try:
                        virsh(uri, verb, name, timeout=60)
                    except subprocess.TimeoutExpired:
                        pass


@pytest.fixture
def domains():
    holder = Domains()
    yield holder
    holder.cleanup()


def write_config(directory, name, xml=None, **kw):
    from lab.libvirtd import diskless_domain_xml

    path = os.path.join(directory, "%s.xml" % uuid.uuid4().hex[:8])
    with open(path, "w") as handle:
        handle.write(xml if xml is not None else diskless_domain_xml(name, **kw))
    return path


@pytest.fixture(scope="session")
def system_libvirtd():
    from lab.libvirtd import ensure_system_libvirtd

    return ensure_system_libvirtd()


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix="hasf-vm-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
