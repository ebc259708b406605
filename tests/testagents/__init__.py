"""Agents that exist only for the tests, and a way to make them executable."""

import os
import sys

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def site_dirs():
    import sysconfig

    return list(dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]))


def install_test_agent(directory, name="HasfTest",
                       module="testagents.hasf_test_agent", function="main"):
    """Write an executable launcher for a test agent (same template as make install)."""
    from hasf.launcher import render

    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    with open(path, "w") as handle:
        handle.write(render(sys.executable, module, function, [TESTS_DIR] + site_dirs(),
                            "test agent"))
    os.chmod(path, 0o755)
    return path
