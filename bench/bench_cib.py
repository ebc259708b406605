"""hasf-cib at scale: a 1,000-VM scenario (issue: hasf-cib).

Each VM has a location preference, orders after and colocations with both
stores.  Timed: spec text -> checked Scenario -> complete CIB -> Relax-NG
validation by xmllint (target < 2 s); crm_verify of the result (< 10 s):
`crm_verify -x` of the configuration, and `hasf-cib verify`'s way
(crm_simulate -u brings both nodes up, then crm_verify).  crm_simulate -S
(running the whole start-up transition) takes minutes at this size and is
not part of the figure.
"""

import os
import tempfile

from harness import Report, timed

from hasf.cib import expand, spec, verify
from hasf.cib.agents import AgentCatalog
from hasf.cib.build import serialize
from hasf.cib.tools import Tools

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.join(HERE, "..", "cib", "examples", "hasf-demo.toml")


def spec_text(vms=1000):
    """The demo scenario with `vms` VMs, alternating preferred nodes."""
    with open(DEMO) as handle:
        text = handle.read()
    head = text[:text.index("[[vm]]")]
    parts = [head]
    for i in range(1, vms + 1):
        parts.append('[[vm]]\nname = "vm%d"\nconfig = "/etc/xen/vm/vm%d"\nhypervisor = "xen:///"\n'
                     'prefer = "node%d"\nmonitor = "30s"\n\n' % (i, i, 1 + i % 2))
    return "".join(parts)


def generate_and_validate(text):
    catalog = AgentCatalog(use_source=False, use_installed=False)
    cib, problems = expand.expand(spec.loads(text), catalog)
    verdict = verify.validate(cib.root)
    if problems.errors or not verdict:
        raise RuntimeError("bench CIB invalid: %s %s" % (problems.errors, verdict.messages))
    return cib.root


def run():
    report = Report("hasf-cib: 1,000-VM scenario (each VM: location + 2 orders + 2 colocations)")
    text = spec_text(1000)
    root = generate_and_validate(text)
    constraints = len(root.find("configuration/constraints"))
    stats = timed("generate + schema-validate", lambda: generate_and_validate(text), runs=5)
    report.single("generate + xmllint (1,000 VMs)", stats, limit=2.0)
    tools = Tools()
    with tempfile.TemporaryDirectory(prefix="hasf-bench-cib-") as tmp:
        path = os.path.join(tmp, "cib.xml")
        with open(path, "w") as handle:
            handle.write(serialize(root))

        def crm_verify():
            result = tools.verify(path)
            if result.rc != 0:
                raise RuntimeError("crm_verify rc %d: %s" % (result.rc, result.stderr[-500:]))
        report.single("crm_verify -x (1,000 VMs)", timed("crm_verify", crm_verify, runs=3),
                      limit=10.0)

        def full():
            verdict = verify.verify(root, tools, settle=False)
            if not verdict:
                raise RuntimeError(verdict.messages[-500:])
        report.single("crm_simulate -u + crm_verify (1,000 VMs)", timed("full", full, runs=3),
                      limit=10.0)
    report.note("%d resources, %d constraints, %d KiB of XML" % (
        len(root.findall("configuration/resources/*")), constraints,
        len(serialize(root)) // 1024))
    return report
