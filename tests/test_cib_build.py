"""Builders and ids: valid NCNames, deterministic, pcs-like, and every fragment valid
against the installed Pacemaker schema (xmllint --relaxng, via hasf.cib.verify)."""

import pytest
from lxml import etree

from hasf.cib import build, verify
from hasf.cib.build import Cib, Expr, Op, ResourceSet
from hasf.cib.errors import CibError
from hasf.cib.ids import IdProvider, is_valid_id, sanitize, why_invalid
from hasf.cib.tools import newest_schema


def test_sanitize_gives_ncnames_pcs_style():
    assert sanitize("location-vm1-node1-INFINITY") == "location-vm1-node1-INFINITY"
    assert sanitize("9lives") == "lives"
    assert sanitize("iqn.2006-01.com:x y") == "iqn.2006-01.comxy"
    assert sanitize("::") == "id"
    for text in ("a:b", "1a", "a b", "-x", "ü"):
        assert is_valid_id(sanitize(text))
        assert why_invalid(text)
    assert why_invalid("vm1") is None


def test_ids_deterministic_and_collisions_resolved_predictably():
    def make():
        ids = IdProvider()
        ids.claim("location-vm1-node1-INFINITY")      # a user resource named like an id
        return [ids.new("location", "vm1", "node1", "INFINITY") for _ in range(3)]
    assert make() == make() == ["location-vm1-node1-INFINITY-1", "location-vm1-node1-INFINITY-2",
                                "location-vm1-node1-INFINITY-3"]
    ids = IdProvider()
    assert ids.claim("vm1") and not ids.claim("vm1")


def test_pcs_like_ids():
    ids = IdProvider(["vm1", "store"])
    prim = build.primitive("vm1", "ocf:hasf:VirtualMachine", ids, {"config": "/c"},
                           {"target-role": "Started"}, [Op("monitor", "10s", "30s", check_level=10)])
    got = [el.get("id") for el in prim.iter() if el.get("id")]
    assert got == ["vm1", "vm1-instance_attributes", "vm1-instance_attributes-config",
                   "vm1-meta_attributes", "vm1-meta_attributes-target-role",
                   "vm1-monitor-interval-10s", "vm1-monitor-interval-10s-instance_attributes",
                   "vm1-monitor-interval-10s-instance_attributes-OCF_CHECK_LEVEL"]
    assert build.clone(build.primitive("store", "ocf:hasf:Filesystem", ids), ids).get("id") == \
        "store-clone"
    assert build.order("a", "b", ids).get("id") == "order-a-b-mandatory"
    assert build.colocation("a", "b", "inf", ids).get("id") == "colocation-a-b-INFINITY"
    assert build.location("a", "n1", "-INFINITY", ids).get("id") == "location-a-n1--INFINITY"


def test_order_never_has_a_score_and_scores_are_checked():
    element = build.order("a", "b", IdProvider(), kind="Optional", symmetrical=False,
                          first_action="start", then_action="start")
    assert element.get("score") is None and element.get("kind") == "Optional"
    assert element.get("symmetrical") == "false"
    with pytest.raises(CibError):
        build.order("a", "b", IdProvider(), kind="Sometimes")
    with pytest.raises(CibError):
        build.location("a", "n", "lots", IdProvider())
    assert build.score("+INFINITY") == "INFINITY" and build.score(-5) == "-5"


def test_nothing_is_joined_from_strings():
    ids = IdProvider()
    prim = build.primitive("x", "ocf:heartbeat:Dummy", ids, {"fake": '<&">\'x'})
    text = etree.tostring(prim, encoding="unicode")
    assert etree.fromstring(text).find(".//nvpair").get("value") == '<&">\'x'


def _all_fragments(ids):
    """One of every kind of element the builders make (with what they reference)."""
    ops = [Op("start", 0, "60s"), Op("stop", 0, "60s"),
           Op("monitor", "10s", "30s", check_level=20, on_fail="restart", role="Started")]
    dummy = build.primitive("d1", "ocf:pacemaker:Dummy", ids, {"fake": "x"},
                            {"resource-stickiness": 10}, ops, utilization={"cpu": 1})
    d2 = build.primitive("d2", "ocf:pacemaker:Dummy", ids)
    d3 = build.primitive("d3", "ocf:pacemaker:Dummy", ids)
    return [
        build.cluster_properties({"stonith-enabled": True, "stonith-action": "off",
                                  "no-quorum-policy": "freeze"}, ids),
        build.defaults("rsc_defaults", {"resource-stickiness": 100}, ids),
        build.defaults("op_defaults", {"timeout": "60s"}, ids),
        dummy,
        build.group("g1", [d2, d3], ids, {"target-role": "Started"}),
        build.clone(build.primitive("c1", "ocf:pacemaker:Stateful", ids), ids,
                    {"notify": True, "interleave": True, "clone-max": 2, "clone-node-max": 1}),
        build.fence_device("fence-a", "fence_hasf_ipmi", ids, {"ip": "10.0.0.1"},
                           host_map={"node1": "bmc1", "node2": "bmc2"},
                           ops=[Op("monitor", "60s")]),
        build.fence_device("fence-b", "external/hasf-libvirt", ids, host_list=["node1", "node2"]),
        build.fencing_level("node1", 1, ["fence-a"], ids),
        build.fencing_level("node1", 2, ["fence-a", "fence-b"], ids),
        build.location("d1", "node1", "INFINITY", ids),
        build.location_rule("d1", "-INFINITY", [Expr("#uname", "ne", "node2"),
                                                Expr("pingd", "not_defined")], ids,
                            boolean_op="or"),
        build.order("d1", "g1", ids, kind="Serialize", symmetrical=False),
        build.order("c1-clone", "d1", ids, first_action="start", then_action="start"),
        build.colocation("d1", "c1-clone", "INFINITY", ids),
        build.order_sets([ResourceSet(["d1", "g1"], sequential=False), ResourceSet(["d3"])], ids),
        build.colocation_sets([ResourceSet(["d1", "g1"])], 100, ids),
    ]


def test_every_fragment_alone_validates_against_the_schema():
    ids = IdProvider()
    for fragment in _all_fragments(ids):
        verdict = verify.validate_fragment(fragment)
        assert verdict, (etree.tostring(fragment), verdict.messages)


def _installed_3x_schemas():
    import glob
    import os
    import re
    names = [os.path.basename(p)[:-4] for p in glob.glob("/usr/share/pacemaker/pacemaker-*.rng")]
    return sorted((n for n in names if re.match(r"pacemaker-[3-9]\.\d+$", n)),
                  key=lambda n: tuple(int(x) for x in n.split("-")[1].split(".")))


@pytest.mark.parametrize("schema", _installed_3x_schemas())
def test_all_fragments_valid_against_every_installed_3x_schema(schema):
    cib = Cib(schema)
    for fragment in _all_fragments(cib.ids):
        cib.add(fragment)
    cib.add_node("node1", 1)
    cib.add_node("node2", 2)
    verdict = verify.validate(cib.root)
    assert verdict, verdict.messages


def test_all_fragments_together_form_a_valid_cib_with_schema_default():
    cib = Cib(newest_schema())
    for fragment in _all_fragments(cib.ids):
        cib.add(fragment)
    cib.add_node("node1", 1)
    cib.add_node("node2", 2)
    verdict = verify.validate(cib.root)
    assert verdict, verdict.messages
    ids = [el.get("id") for el in cib.root.iter() if el.get("id") and el.tag != "resource_ref"
           and el.tag != "node"]
    assert len(ids) == len(set(ids)) and all(is_valid_id(i) for i in ids)
    assert cib.root.get("validate-with") == newest_schema()


def test_invalid_fragment_is_reported_by_xmllint():
    bad = etree.Element("rsc_location", id="l", rsc="x")   # neither node+score nor rule
    verdict = verify.validate_fragment(bad)
    assert not verdict and "rsc_location" in verdict.messages


def test_legacy_score_on_order_fails_crm_verify():
    """Why builders never write an order score: Pacemaker itself rejects it."""
    cib = Cib(newest_schema())
    ids = cib.ids
    cib.add(build.cluster_properties({"stonith-enabled": False}, ids))
    cib.add(build.primitive("a", "ocf:pacemaker:Dummy", ids))
    cib.add(build.primitive("b", "ocf:pacemaker:Dummy", ids))
    cib.add_node("node1", 1)
    good = verify.verify(cib.root)
    assert good, good.messages
    cib.add(build.order("a", "b", ids)).set("score", "INFINITY")
    assert not verify.verify(cib.root)
