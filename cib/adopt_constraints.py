"""`hasf-cib adopt`, second half: constraints into spec keys, or problems.

A hasf spec says where things run in few words: the SAN's node, a VM's
prefer/avoid/only and the stores it needs; every other constraint of the
scenario is generated (hasf.cib.expand).  So each constraint of the CIB is
either one the spec regenerates (dropped), one a spec key says (turned into
that key), or a problem naming it -- never dropped without a word.
"""


def _score(text):
    text = (text or "").strip()
    if text.lstrip("+-").isdigit():
        return int(text)
    return text


def _uname_ne(location):
    """[node, ...] of a `-INFINITY: #uname ne A and #uname ne B` rule, else None."""
    rules = location.findall("rule")
    if len(rules) != 1 or location.get("node") or location.get("score"):
        return None
    rule = rules[0]
    if rule.get("score") != "-INFINITY" or rule.get("boolean-op", "and") != "and" \
            or rule.get("role") or len(rule) != len(rule.findall("expression")):
        return None
    nodes = []
    for expr in rule.findall("expression"):
        if expr.get("attribute") != "#uname" or expr.get("operation") != "ne" \
                or expr.get("value-source", "literal") != "literal":
            return None
        nodes.append(expr.get("value"))
    return nodes or None


class Constraints:
    def __init__(self, adopter):
        self.a = adopter
        self.after = {vm: [] for vm in adopter.vms}
        self.with_ = {vm: [] for vm in adopter.vms}

    def role(self, rid):
        return self.a.top.get(rid, (None, None))

    def problem(self, element, text):
        self.a.problems.error("constraint %s" % element.get("id"), text)

    def location(self, element):
        role, name = self.role(element.get("rsc"))
        if element.get("rsc-pattern") or element.get("role") or element.find("resource_set") \
                is not None:
            return self.problem(element, "patterns, roles and resource sets have no form in a "
                                "hasf spec")
        node, score = element.get("node"), element.get("score")
        if node and score and element.find("rule") is None:
            if role == "fence" and ("location", name, node, score) in self.a.implied:
                return None
            if role == "vm":
                vm = self.a.vms[name]
                if score == "-INFINITY":
                    vm.setdefault("avoid", []).append(node)
                else:
                    vm.setdefault("prefer", {})[node] = _score(score)
                return None
            return self.problem(element, "a location of %s has no form in a hasf spec"
                                % element.get("rsc"))
        nodes = _uname_ne(element)
        if nodes and role == "san" and len(nodes) == 1:
            self.a.spec["san"]["node"] = nodes[0]
            return None
        if nodes and role == "vm":
            self.a.vms[name].setdefault("only", []).extend(nodes)
            return None
        return self.problem(element, "this location rule has no form in a hasf spec (a spec "
                            "says only '#uname ne NODE' rules, for the SAN and for VMs)")

    def order(self, element):
        first, then = self.role(element.get("first")), self.role(element.get("then"))
        plain = element.find("resource_set") is None and not element.get("first-action") \
            and not element.get("then-action") and element.get("symmetrical") is None \
            and element.get("kind", "Mandatory") == "Mandatory" \
            and element.get("score") in (None, "INFINITY")
        if plain:
            if (first[0], then[0]) in (("san", "initiator"), ("initiator", "store"),
                                       ("membership", "store")):
                return None
            if then[0] == "vm" and first[0] in ("store", "vm"):
                self.after[then[1]].append(first[1])
                return None
        return self.problem(element, "this order has no form in a hasf spec (a spec orders a "
                            "VM after its stores; the rest of the scenario's orders are fixed)")

    def colocation(self, element):
        rsc, other = self.role(element.get("rsc")), self.role(element.get("with-rsc"))
        plain = element.find("resource_set") is None and element.get("score") == "INFINITY" \
            and not element.get("rsc-role") and not element.get("with-rsc-role") \
            and not element.get("node-attribute")
        if plain:
            if (rsc[0], other[0]) in (("store", "initiator"), ("store", "membership")):
                return None
            if rsc[0] == "vm" and other[0] in ("store", "vm"):
                self.with_[rsc[1]].append(other[1])
                return None
        return self.problem(element, "this colocation has no form in a hasf spec (a spec "
                            "keeps a VM with its stores; the rest is fixed)")

    def run(self):
        constraints = self.a.cfg.find("constraints")
        handlers = {"rsc_location": self.location, "rsc_order": self.order,
                    "rsc_colocation": self.colocation}
        for element in (constraints if constraints is not None else ()):
            if not isinstance(element.tag, str):
                continue
            handler = handlers.get(element.tag)
            if handler is None:
                self.problem(element, "a <%s> has no form in a hasf spec" % element.tag)
            else:
                handler(element)
        self.vm_dependencies()
        self.san_and_initiator()
        self.membership()

    def vm_dependencies(self):
        stores = [s["name"] for s in self.a.spec.get("store", [])]
        for name, vm in self.a.vms.items():
            after, with_ = self.after[name], self.with_[name]
            if sorted(after) == sorted(with_) and all(d in stores for d in after):
                if sorted(after) != sorted(stores):
                    vm["stores"] = after
            else:
                vm["stores"] = []
                vm["after"] = after
                vm["with"] = with_

    def san_and_initiator(self):
        a = self.a
        san = a.spec.get("san")
        if san is not None and "node" not in san:
            a.problems.error("group %s" % san["name"], "is not pinned to one node by a "
                             "'-INFINITY: #uname ne NODE' rule: a spec's SAN runs on one node")
        if a.initiator_found is None:
            if san is not None:
                a.problems.error("group %s" % san["name"], "no cloned iscsi initiator logs in "
                                 "to it: a spec's SAN always has one")
            return
        rid, params = a.initiator_found
        if san is None:
            a.problems.error("resource %s" % rid, "an initiator without its SAN group in the "
                             "same CIB has no form in a hasf spec")
            return
        if params.pop("portal", san["portal"]) != san["portal"] \
                or params.pop("target", san["iqn"]) != san["iqn"]:
            a.problems.error("resource %s" % rid, "logs in to another portal or target than "
                             "the SAN group's")
        if params:
            san["initiator-params"] = params
        if "lun" in san:  # [[san.lun]] after the san's own keys
            san["lun"] = san.pop("lun")

    def membership(self):
        a = self.a
        if any(s.get("fstype", "ocfs2") == "ocfs2" for s in a.spec.get("store", [])) \
                and "ocfs2" not in a.spec:
            a.problems.error("stores", "OCFS2 stores without an ocf:hasf:OCFS2Membership "
                             "clone: write [ocfs2] with every node's o2net address")


def apply(adopter):
    Constraints(adopter).run()
