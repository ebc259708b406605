"""[san.chap]: one CHAP setting reaches both ends of the iSCSI path, and the spec says
where a password would be readable."""

import os

import pytest

from hasf.cib import expand, spec
from hasf.cib.agents import AgentCatalog
from hasf.cib.errors import SpecError

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.join(HERE, "..", "cib", "examples", "hasf-demo.toml")
NO_AGENTS = dict(use_source=False, use_installed=False)

MUTUAL = """
[san.chap]
username = "nodes"
password-file = "/etc/hasf/iscsi-chap"
target-username = "san"
target-password-file = "/etc/hasf/iscsi-chap-target"
"""


def demo_with(extra, implementation='implementation = "lio-t"\n'):
    with open(DEMO) as handle:
        text = handle.read()
    text = text.replace('portal = "192.168.10.2:3260"\n',
                        'portal = "192.168.10.2:3260"\n' + implementation, 1)
    return text.replace("[[san.lun]]", extra.strip() + "\n\n[[san.lun]]", 1)


def params_of(root, xpath):
    return {n.get("name"): n.get("value")
            for n in root.find(xpath).find("instance_attributes")}


def expanded(text):
    s = spec.loads(text, collect=True)
    cib, problems = expand.expand(s, AgentCatalog(**NO_AGENTS))
    return s, cib.root, problems


def test_mutual_chap_reaches_target_and_initiator_with_matching_names():
    """Mutation: swap the incoming_/outgoing_ prefixes in cib.chap._SIDES -> the target's
    parameters assert fails (and the cluster would refuse every login)."""
    s, root, problems = expanded(demo_with(MUTUAL))
    assert not s.problems.errors and not s.problems.warnings, s.problems.errors
    target = params_of(root, ".//primitive[@type='iSCSITarget']")
    assert target["implementation"] == "lio-t"
    assert {k: v for k, v in target.items() if k.startswith(("incoming_", "outgoing_"))} == {
        "incoming_username": "nodes", "incoming_password_file": "/etc/hasf/iscsi-chap",
        "outgoing_username": "san", "outgoing_password_file": "/etc/hasf/iscsi-chap-target"}
    initiator = params_of(root, ".//primitive[@type='iscsi']")
    assert {k: v for k, v in initiator.items() if k.startswith(("username", "password"))} == {
        "username": "nodes", "password_file": "/etc/hasf/iscsi-chap",
        "username_in": "san", "password_in_file": "/etc/hasf/iscsi-chap-target"}


def test_a_password_in_the_spec_is_accepted_with_a_warning_naming_the_readers():
    """Mutation: drop the warning in cib.chap._side -> no warning."""
    s, root, _ = expanded(demo_with('[san.chap]\nusername = "nodes"\npassword = "s3cret-chap"\n'))
    assert not s.problems.errors
    assert any("stored in the CIB" in w and "password-file" in w for w in s.problems.warnings)
    initiator = params_of(root, ".//primitive[@type='iscsi']")
    assert initiator["password"] == "s3cret-chap"


def test_a_password_passed_through_params_is_warned_about_too():
    """Mutation: drop the PASSWORD_PARAMS loop in spec._san -> no warning."""
    text = demo_with("", implementation='implementation = "lio-t"\n'
                     'target-params = { incoming_username = "u", incoming_password = "p4ss" }\n')
    s = spec.loads(text, collect=True)
    assert any("target-params.incoming_password" in w for w in s.problems.warnings)


@pytest.mark.parametrize("chap, implementation, said", [
    ('username = "u"\npassword-file = "/etc/c"', "", 'implementation = "lio-t"'),
    ('username = "u"', 'implementation = "lio-t"\n', "needs password-file"),
    ('password-file = "/etc/c"', 'implementation = "lio-t"\n', "without username"),
    ('username = "u"\npassword = "x"\npassword-file = "/etc/c"', 'implementation = "lio-t"\n',
     "not both"),
    ('username = "u"\npassword-file = "etc/c"', 'implementation = "lio-t"\n', "absolute path"),
    ('target-username = "t"\ntarget-password-file = "/etc/t"', 'implementation = "lio-t"\n',
     "mutual CHAP without the initiators' login"),
    ('username = "u"\npassword-file = "/etc/c"\nsecret = "x"', 'implementation = "lio-t"\n',
     "unknown key 'secret'"),
])
def test_bad_chap_specs_are_refused_with_the_reason(chap, implementation, said):
    """Mutations: each check in cib.chap.read_chap/_side removed -> its case is accepted."""
    with pytest.raises(SpecError) as caught:
        spec.loads(demo_with("[san.chap]\n" + chap, implementation=implementation))
    assert said in str(caught.value)


def test_chap_and_the_same_parameter_in_params_clash():
    """Mutation: drop the clashes() check -> the spec is accepted, one value silently lost."""
    text = demo_with(MUTUAL).replace(
        'implementation = "lio-t"\n',
        'implementation = "lio-t"\ninitiator-params = { username = "other" }\n', 1)
    with pytest.raises(SpecError) as caught:
        spec.loads(text)
    assert "username is set by [san.chap]" in str(caught.value)


def test_the_agents_take_every_parameter_chap_writes():
    """Checked against hasf's own agents' meta-data (from the source tree): the names
    [san.chap] writes are parameters iSCSITarget (lio-t) and iscsi declare.  Mutation:
    write `incoming_secret_file` for the target -> "unknown parameter"."""
    s = spec.loads(demo_with(MUTUAL), collect=True)
    _cib, problems = expand.expand(s, AgentCatalog())
    assert not problems.errors, problems.errors


def test_the_logical_units_run_the_targets_implementation():
    """The LU agent drives the same target software as its target: a lio-t SAN whose LU
    ran tgt (the default) failed its start in the lab ("target ... is not running").
    Mutation: drop implementation from the iscsi-lun role's lun_role.map call -> no
    implementation on the LU."""
    _s, root, _ = expanded(demo_with(MUTUAL))
    lun = params_of(root, ".//primitive[@type='iSCSILogicalUnit']")
    assert lun["implementation"] == "lio-t"
