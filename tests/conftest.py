"""Shared fixtures: OCF environments and an installed copy of the test agent."""

import os

import pytest

from testagents import install_test_agent

# The fast tier: `make test-fast` and the RPM's %check run `pytest -m fast`.  It is kept
# here, in one list: the test modules that need no guest, no Pacemaker daemons, no
# libvirtd (libvirt's in-process test:/// driver is fine), no simulator or sshd, no loop
# devices, FUSE or namespaces -- only this checkout, Python and offline tools (crm_verify,
# crm_simulate, xmllint, ocf-tester) -- and no interpreter that imports hasf by itself:
# %check has the package in the build root only.  (test_install, test_stonith_helpers and
# test_stonith_secrets exec launchers of such an interpreter: `make test` runs them.)
# A test in one of these modules that carries one of NOT_FAST still stays out.
FAST_MODULES = frozenset({
    "test_bounded", "test_cib_agents", "test_cib_build", "test_cib_hostile", "test_cib_legacy",
    "test_cib_pacemaker", "test_cib_spec", "test_cib_toml", "test_cib_unverified",
    "test_ocf_framework", "test_ocf_helpers", "test_ocf_log", "test_ocf_metadata",
    "test_ocf_tester", "test_runner", "test_runner_redaction", "test_stonith_engine",
    "test_vm_logic",
})
NOT_FAST = ("slow", "pacemaker", "libvirt")


def pytest_collection_modifyitems(config, items):
    """Mark the fast tier (see FAST_MODULES)."""
    for item in items:
        if item.path.stem in FAST_MODULES and not any(item.get_closest_marker(m) for m in NOT_FAST):
            item.add_marker(pytest.mark.fast)


@pytest.fixture
def rsctmp(tmp_path):
    path = tmp_path / "rsctmp"
    path.mkdir()
    return str(path)


@pytest.fixture
def ocf_env(rsctmp):
    """An environment like pacemaker-execd gives an agent (recurring monitor, 20 s timeout)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "OCF_ROOT": "/usr/lib/ocf",
        "OCF_RA_VERSION_MAJOR": "1",
        "OCF_RA_VERSION_MINOR": "1",
        "OCF_RESOURCE_INSTANCE": "t1",
        "OCF_RESOURCE_TYPE": "HasfTest",
        "OCF_RESKEY_CRM_meta_timeout": "20000",
        "OCF_RESKEY_CRM_meta_interval": "10000",
        "HA_RSCTMP": rsctmp,
    }


@pytest.fixture(scope="session")
def test_agent():
    """The HasfTest agent as an executable, launched exactly like an installed agent.

    In a world-readable directory: ocf-tester runs meta-data as `nobody`.
    """
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="hasf-ocf-")
    os.chmod(directory, 0o755)
    yield install_test_agent(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(autouse=True)
def _fresh_secrets():
    """Secrets are recorded process-wide; one test's password must not redact another's text."""
    from hasf.secret import forget_all

    forget_all()
    yield
    forget_all()


@pytest.fixture(scope="session")
def hasf_agent():
    """hasf_agent(name, module) -> an installed-like launcher of that agent (made once).

    In a world-readable directory: ocf-tester runs meta-data as `nobody`."""
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="hasf-agents-")
    os.chmod(directory, 0o755)
    made = {}

    def launcher(name, module, function="main"):
        if name not in made:
            made[name] = install_test_agent(directory, name, module, function)
        return made[name]
    yield launcher
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def workdir():
    """A world-readable scratch directory (agents may run as nobody), removed afterwards."""
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="hasf-test-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def guest_image():
    """The cached Debian guest image (lab.image); skipped only when it cannot be built
    here for a reason that is not a bug (no Debian mirror reachable, not root)."""
    from lab.image import GuestImageUnavailable
    from lab.image import guest_image as build

    try:
        return build()
    except GuestImageUnavailable as exc:
        pytest.skip("no guest image: %s" % exc)
