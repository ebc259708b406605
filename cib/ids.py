"""Deterministic, valid, pcs-like XML ids.

Every `id` in a CIB is an xsd:ID: unique in the whole document and an
NCName.  pcs narrows that to a first character in `[A-Za-z_]` and the rest in
`[A-Za-z0-9_.-]`; hasf uses the same alphabet so its ids survive every tool.

Names a user chose (resource names) are claimed first and never altered; a
generated id (`location-vm1-node1-INFINITY`, `vm1-monitor-interval-10s`, ...)
that collides with anything already taken gets `-1`, `-2`, ... appended, in
generation order -- so the same input always yields the same ids.
"""

import re

_FIRST_OK = re.compile(r"[A-Za-z_]")
_REST_BAD = re.compile(r"[^A-Za-z0-9_.-]")
VALID_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")


def is_valid_id(text):
    return bool(text) and VALID_ID.match(text) is not None


def why_invalid(text):
    """A short reason text is not a usable id, or None when it is."""
    if not text:
        return "an id must not be empty"
    if not _FIRST_OK.match(text[0]):
        return "%r must start with a letter or '_'" % text
    bad = sorted(set(_REST_BAD.findall(text[1:])))
    if bad:
        return "%r contains %s (allowed: letters, digits, '_', '.', '-')" % (
            text, " ".join(repr(c) for c in bad))
    return None


def sanitize(text):
    """An id made from arbitrary text, the pcs way: invalid characters are dropped."""
    text = str(text)
    while text and not _FIRST_OK.match(text[0]):
        text = text[1:]
    text = _REST_BAD.sub("", text)
    return text or "id"


def join(*parts):
    """`location`, `vm1`, `node1`, `INFINITY` -> `location-vm1-node1-INFINITY`."""
    return sanitize("-".join(str(p) for p in parts if p not in (None, "")))


class IdProvider:
    """Hands out unique ids for one document."""

    def __init__(self, taken=()):
        self._taken = set(taken)

    def claim(self, name):
        """Reserve a user-chosen id exactly; False when it was already taken."""
        if name in self._taken:
            return False
        self._taken.add(name)
        return True

    def taken(self, name):
        return name in self._taken

    def new(self, *parts):
        """A fresh id built from parts; collisions get -1, -2, ... appended."""
        base = join(*parts)
        candidate, counter = base, 0
        while candidate in self._taken:
            counter += 1
            candidate = "%s-%d" % (base, counter)
        self._taken.add(candidate)
        return candidate

    @classmethod
    def from_tree(cls, root):
        """A provider that knows every id already used in an lxml tree."""
        return cls(el.get("id") for el in root.iter() if el.get("id") is not None)
