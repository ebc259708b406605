"""hasf-cib warns about every fence device that cannot verify power, and the shipped
example fences with one that can (IPMI; the demo device is a commented option).

Real Pacemaker tools: `verify` runs xmllint and crm_simulate + crm_verify.
Mutation that brings the silence back: drop warn_unverified() from
Expander.expand (spec) or from cli._load_cib (CIB file).
"""

import os
import re

from hasf.cib import cli

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.join(HERE, "..", "cib", "examples", "hasf-demo.toml")


def _demo_device_variant():
    """The example with its commented demo device in place of the two IPMI devices."""
    text = open(DEMO).read()
    start = text.index("[[fence]]\nname = \"fence-node1\"")
    end = text.index("# A lab without BMCs")
    text = text[:start] + text[end:]
    return re.sub(r"(?m)^# (\[\[fence\]\]|name = \"stonith-demo\"|agent = |hosts = |params = )",
                  r"\1", text)


def test_shipped_example_fences_with_a_verifying_device(capsys):
    assert cli.main(["verify", DEMO]) == cli.EXIT_OK
    out = capsys.readouterr()
    assert "cannot verify" not in out.err, out.err
    assert "fence_hasf_ipmi" in open(DEMO).read()
    assert re.search(r"(?m)^agent = \"fence_hasf_demo\"", open(DEMO).read()) is None


def test_verify_warns_for_the_demo_device(tmp_path, capsys):
    spec = tmp_path / "lab.toml"
    spec.write_text(_demo_device_variant())
    assert cli.main(["verify", str(spec)]) == cli.EXIT_OK     # a warning, not an error
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "cannot verify that a node is off" in line]
    assert len(warnings) == 1 and "fence device stonith-demo" in warnings[0], err
    assert "NOT for production" in warnings[0]


def test_every_non_verifying_device_of_a_cib_file_is_named(tmp_path, capsys):
    out = tmp_path / "cib.xml"
    spec = tmp_path / "lab.toml"
    text = _demo_device_variant().replace(
        'hosts = ["node1", "node2"]', 'hosts = ["node1"]').replace(
        "# Step three", '[[fence]]\nname = "ssh-n2"\nagent = "external/ssh"\n'
        'hosts = ["node2"]\nparams = { hostlist = "node2" }\n\n'
        '[[fence]]\nname = "ipmi-n2"\nagent = "fence_hasf_ipmi"\nhosts = ["node2"]\n'
        'params = { ip = "192.0.2.2", password_file = "/etc/hasf/bmc" }\n\n# Step three')
    spec.write_text(text)
    assert cli.main(["build", str(spec), "-o", str(out)]) == cli.EXIT_OK
    capsys.readouterr()
    assert cli.main(["verify", str(out)]) == cli.EXIT_OK
    err = capsys.readouterr().err
    named = sorted(re.findall(r"fence device (\S+): \S+ cannot verify", err))
    assert named == ["ssh-n2", "stonith-demo"], err
