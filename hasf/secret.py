"""Secrets that never leak into argv, logs, exit reasons or exceptions.

A `Secret` wraps a string whose str()/repr() print as "****".  Creating one
also records the clear value in a process-wide, append-only set that
`redact()` scrubs from any text on its way out (log lines, exit reasons,
exception messages, captured command output).  The command runner refuses a
Secret in argv outright: secrets reach tools through stdin, the environment or
a file, never the process table.
"""

MASK = "****"
_known = set()


class Secret:
    """A string value that must not be shown; `reveal()` is the only way in."""

    __slots__ = ("_value",)

    def __init__(self, value):
        if isinstance(value, Secret):
            value = value.reveal()
        self._value = str(value)
        if self._value:
            _known.add(self._value)

    def reveal(self):
        return self._value

    def __bool__(self):
        return bool(self._value)

    def __eq__(self, other):
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self):
        return hash(self._value)

    def __str__(self):
        return MASK

    __repr__ = __str__


def redact(text):
    """Replace every known secret value in text (longest first) by the mask."""
    if not _known or not text:
        return text
    for value in sorted(_known, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text


def reveal(value):
    """The clear text of a Secret, or the value itself for plain strings."""
    return value.reveal() if isinstance(value, Secret) else value


def forget_all():
    """Drop every recorded secret (tests; a process that handled one config and moves on)."""
    _known.clear()
