"""Reading a spec's TOML: `tomllib` on Python 3.11+, `tomli` below (the code tomllib came from).

Why not a parser of our own: hasf carried one for 3.9/3.10, and hostile
input made it raise uncaught ValueError/RecursionError (tracebacks) and
accept what tomllib rejects.  tomli is the well-kept original (Debian and
SUSE `python3-tomli`, PyPI `tomli`), so both interpreters read a spec the
same way.

Every bad input -- bytes that are not UTF-8, text that is not TOML, nesting
deep enough to exhaust the stack -- becomes one `CibError` naming the source
and the line; nothing escapes as a traceback.
"""

try:  # pragma: no cover - depends on the interpreter
    import tomllib as _reader  # novermin (guarded: below 3.11 tomli is the same code)
except ImportError:  # Python < 3.11
    import tomli as _reader

from hasf.cib.errors import CibError


def reader():
    """The module whose loads()/TOMLDecodeError this interpreter uses."""
    return _reader


def _deepest_line(text):
    """The line where bracket nesting is deepest (a rough count; for the message only)."""
    depth = best = 0
    line = best_line = 1
    for char in text:
        if char in "[{":
            depth += 1
            if depth > best:
                best, best_line = depth, line
        elif char in "]}":
            depth -= 1
        elif char == "\n":
            line += 1
    return best_line


def loads(text, source="spec", module=None):
    """The TOML document in text as a dict, or CibError("<source> ... (at line N ...)")."""
    module = module or _reader
    try:
        return module.loads(text)
    except module.TOMLDecodeError as exc:
        where = "" if "line" in str(exc) else " (the document ends at line %d)" % (
            text.count("\n") + 1)
        raise CibError("%s is not valid TOML: %s%s" % (source, exc, where)) from None
    except RecursionError:
        raise CibError("%s is not a usable spec: arrays or tables nested too deeply (at line "
                       "%d)" % (source, _deepest_line(text))) from None
    except ValueError as exc:
        # a value the reader cannot convert (e.g. an integer beyond Python's digit limit)
        raise CibError("%s is not a usable spec: %s (at line %s)"
                       % (source, exc, _line_raising(text, module))) from None


def _line_raising(text, module):
    """The first line that alone makes the reader raise a plain ValueError (or '?')."""
    for number, line in enumerate(text.splitlines(), 1):
        try:
            module.loads(line)
        except module.TOMLDecodeError:
            continue
        except ValueError:
            return number
        except RecursionError:
            continue
    return "?"


def decode(data, source="spec"):
    """Spec bytes as text; CibError naming the line of the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CibError("%s is not UTF-8 text: byte 0x%02x (at line %d)"
                       % (source, data[exc.start], line)) from None


def load(path, module=None):
    with open(path, "rb") as handle:
        data = handle.read()
    return loads(decode(data, path), path, module)
