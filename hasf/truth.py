"""Boolean words, read the same way everywhere in hasf (OCF, fence agents, CIB checks).

The set is ocf-shellfuncs' `ocf_is_true` plus fence-agents' spellings.
"""

TRUE_WORDS = frozenset(("1", "yes", "true", "on", "y"))
FALSE_WORDS = frozenset(("0", "no", "false", "off", "n"))


def is_true(text):
    """ocf_is_true: only a true word is true (unset, empty and garbage are false)."""
    return (text or "").strip().lower() in TRUE_WORDS


def parse_bool(text, empty=False):
    """True/False for a boolean word; `empty` for ""; ValueError for anything else.

    fence-agents treat a bare flag (`lanplus` with no value) as on: they pass empty=True.
    """
    word = (text or "").strip().lower()
    if not word:
        return empty
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError("must be true or false (yes/no, on/off, 1/0)")
