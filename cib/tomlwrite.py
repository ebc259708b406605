"""Writing a spec as TOML, checked by reading it back with the real TOML reader.

`hasf-cib adopt` prints specs; the standard library reads TOML but does not
write it.  A spec is a fixed, shallow shape (tables, arrays of tables,
strings, integers, booleans, lists, inline tables), so the writer is small;
whatever it writes is parsed again by tomllib/tomli (hasf.cib.tomlread) and
must give back exactly the data -- a value the writer got wrong is an error,
never a spec that means something else.
"""

import json

from hasf.cib.errors import CibError

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def key(name):
    return name if name and set(name) <= _BARE else string(name)


def string(text):
    """A TOML basic string: JSON's escapes are TOML's, but TOML also forbids a raw DEL."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def value(item):
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int):
        return str(item)
    if isinstance(item, str):
        return string(item)
    if isinstance(item, list):
        return "[%s]" % ", ".join(value(v) for v in item)
    if isinstance(item, dict):
        if not item:
            return "{}"
        return "{ %s }" % ", ".join("%s = %s" % (key(k), value(v)) for k, v in item.items())
    raise CibError("cannot write %r as TOML" % (item,))


def _is_table_array(item):
    return isinstance(item, list) and item and all(isinstance(v, dict) for v in item)


def _section(lines, path, table, comments):
    """key = value lines of one table, then its sub-tables and arrays of tables."""
    deferred = []
    for name, item in table.items():
        if _is_table_array(item) and name in comments.get("arrays", ()):
            deferred.append((name, item))
        else:
            lines.append("%s = %s" % (key(name), value(item)))
    for name, items in deferred:
        for item in items:
            lines.append("")
            lines.append("[[%s]]" % ".".join(key(p) for p in path + [name]))
            _section(lines, path + [name], item, comments)


def dumps(data, header=(), arrays=("fence", "store", "vm", "resource", "lun")):
    """TOML text for `data` (a dict of tables / arrays of tables), checked by reading it back.

    `arrays`: names of arrays of tables written as [[name]] sections (others inline)."""
    from hasf.cib import tomlread

    lines = ["# " + line if line else "#" for line in header]
    options = {"arrays": arrays}
    for name, item in data.items():
        if isinstance(item, dict):
            lines.append("")
            lines.append("[%s]" % key(name))
            _section(lines, [name], item, options)
        elif _is_table_array(item) and name in arrays:
            for entry in item:
                lines.append("")
                lines.append("[[%s]]" % key(name))
                _section(lines, [name], entry, options)
        else:
            raise CibError("top-level %r must be a table or an array of tables" % name)
    text = "\n".join(lines).lstrip("\n") + "\n"
    if tomlread.loads(text, "the written spec") != data:
        raise CibError("internal error: the TOML written does not read back as the spec")
    return text
