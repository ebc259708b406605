"""Which node is which target: host lists and node:target maps.

One syntax covers both anchors:
- Pacemaker's `pcmk_host_map`: ``node1:dom1;node2:dom2``
- cluster-glue external/libvirt's `hostlist`: ``node1[:dom1] node2[:dom2]`` (spaces or commas)
A bare name maps to itself.  cluster-glue lower-cases host names before
`reset`, so node names match case-insensitively; targets keep their case
(libvirt domain names are case-sensitive).
"""

from hasf.stonith.errors import ConfigError, UnknownTarget

_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@+-")


def _items(text):
    """Entries separated by ';', ',' or whitespace (no re: it costs ms per exec)."""
    return text.replace(";", " ").replace(",", " ").split()


class TargetMap:
    def __init__(self, entries=()):
        self._nodes = {}      # lower-cased node -> (node, target)
        for node, target in entries:
            self._nodes[node.lower()] = (node, target)

    @classmethod
    def parse(cls, *texts):
        """A map from any number of host list / host map strings (None skipped)."""
        entries, problems = [], []
        for text in texts:
            for item in _items(text or ""):
                if not item:
                    continue
                node, sep, target = item.partition(":")
                if not sep:
                    node, sep, target = item.partition("=")
                target = target if sep else node
                if not node or not target:
                    problems.append("bad host map entry %r (want node:target)" % item)
                    continue
                entries.append((node, target))
        if problems:
            raise ConfigError(problems)
        return cls(entries)

    def __bool__(self):
        return bool(self._nodes)

    def nodes(self):
        return [node for node, _ in self._nodes.values()]

    def items(self):
        return list(self._nodes.values())

    def resolve(self, name):
        """The target for node `name`; with an empty map the name itself.

        A name that is itself one of the mapped targets is accepted too
        (Pacemaker sends the mapped target in `port` after applying
        pcmk_host_map).  Anything else is not ours: UnknownTarget.
        """
        if not name:
            raise UnknownTarget("no target node given")
        if not self._nodes:
            return name
        hit = self._nodes.get(name.lower())
        if hit is not None:
            return hit[1]
        for _node, target in self._nodes.values():
            if target == name:
                return target
        raise UnknownTarget("%s is not in this device's host list (%s)"
                            % (name, " ".join(self.nodes())))

    def node_for(self, target):
        for node, mapped in self._nodes.values():
            if mapped == target:
                return node
        return None


def valid_token(name):
    """Pacemaker parses list output as tokens of [A-Za-z0-9_.-] (plus @+ here)."""
    return bool(name) and set(name) <= _TOKEN_CHARS
