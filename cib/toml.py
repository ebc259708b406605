"""Reading the scenario spec (TOML) on Python 3.9 and 3.10 too.

Python 3.11+ has `tomllib`; cluster nodes may run 3.9, and hasf adds no
dependency for this.  So `loads()` uses tomllib when present and otherwise a
small parser for the subset of TOML 1.0 a spec needs: comments, tables,
arrays of tables, dotted and quoted keys, basic and literal strings (also
multi-line), integers, floats, booleans, arrays and inline tables.  Dates
and times are refused with a clear message.  Tests run both on the same
inputs and demand identical results.
"""

import re

try:  # pragma: no cover - depends on the interpreter
    import tomllib as _tomllib  # novermin (guarded: 3.9/3.10 use the parser below)
except ImportError:  # Python < 3.11
    _tomllib = None


class TOMLError(ValueError):
    """The text is not TOML (message names the line)."""


def loads(text, force_fallback=False):
    if _tomllib is not None and not force_fallback:
        try:
            return _tomllib.loads(text)
        except _tomllib.TOMLDecodeError as exc:
            raise TOMLError(str(exc)) from None
    return _Parser(text).parse()


_BARE = re.compile(r"[A-Za-z0-9_-]+")
_NUMBER = re.compile(r"[+-]?(0x[0-9A-Fa-f_]+|0o[0-7_]+|0b[01_]+|inf|nan|"
                     r"[0-9][0-9_]*(\.[0-9_]+)?([eE][+-]?[0-9_]+)?)")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{2}:[0-9]{2}")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


class _Parser:
    def __init__(self, text):
        self.text = text
        self.pos = 0
        self.root = {}
        self.defined = set()       # ids of tables created by a [header] (or implicitly)
        self.frozen = set()        # ids of inline tables/arrays (immutable)

    # -- low level ---------------------------------------------------------------------
    def fail(self, message):
        line = self.text.count("\n", 0, self.pos) + 1
        raise TOMLError("%s (at line %d)" % (message, line))

    def peek(self, n=1):
        return self.text[self.pos:self.pos + n]

    def skip_ws(self):
        while self.peek() in (" ", "\t"):
            self.pos += 1

    def skip_comment(self):
        if self.peek() == "#":
            end = self.text.find("\n", self.pos)
            self.pos = len(self.text) if end < 0 else end

    def skip_blank(self):
        """Whitespace, newlines and comments (inside arrays)."""
        while True:
            self.skip_ws()
            self.skip_comment()
            if self.peek() in ("\n", "\r"):
                self.pos += 1
                continue
            return

    def end_of_line(self):
        self.skip_ws()
        self.skip_comment()
        if self.peek() == "\r":
            self.pos += 1
        if self.pos < len(self.text) and self.peek() != "\n":
            self.fail("expected the end of the line, found %r" % self.peek())
        self.pos += 1

    # -- structure ---------------------------------------------------------------------
    def parse(self):
        table = self.root
        while True:
            self.skip_blank()
            if self.pos >= len(self.text):
                return self.root
            if self.peek(2) == "[[":
                self.pos += 2
                keys = self.key()
                if self.peek(2) != "]]":
                    self.fail("expected ]]")
                self.pos += 2
                table = self.array_table(keys)
            elif self.peek() == "[":
                self.pos += 1
                keys = self.key()
                if self.peek() != "]":
                    self.fail("expected ]")
                self.pos += 1
                table = self.table(keys)
            else:
                keys = self.key()
                if self.peek() != "=":
                    self.fail("expected = after key %s" % ".".join(keys))
                self.pos += 1
                self.skip_ws()
                self.assign(table, keys, self.value())
            self.end_of_line()

    def descend(self, table, key):
        item = table.setdefault(key, {})
        if isinstance(item, list) and id(item) not in self.frozen:
            item = item[-1]
        if not isinstance(item, dict) or id(item) in self.frozen:
            self.fail("key %s is already defined as a value" % key)
        return item

    def table(self, keys):
        parent = self.root
        for key in keys[:-1]:
            parent = self.descend(parent, key)
        existing = parent.get(keys[-1])
        if existing is not None and (not isinstance(existing, dict)
                                     or id(existing) in self.defined
                                     or id(existing) in self.frozen):
            self.fail("table [%s] is defined twice" % ".".join(keys))
        table = self.descend(parent, keys[-1])
        self.defined.add(id(table))
        return table

    def array_table(self, keys):
        parent = self.root
        for key in keys[:-1]:
            parent = self.descend(parent, key)
        array = parent.setdefault(keys[-1], [])
        if not isinstance(array, list) or id(array) in self.frozen:
            self.fail("[[%s]] conflicts with a value" % ".".join(keys))
        table = {}
        array.append(table)
        return table

    def assign(self, table, keys, value):
        for key in keys[:-1]:
            table = self.descend(table, key)
        if keys[-1] in table:
            self.fail("key %s is defined twice" % ".".join(keys))
        table[keys[-1]] = value

    def key(self):
        keys = []
        while True:
            self.skip_ws()
            char = self.peek()
            if char == '"':
                keys.append(self.basic_string())
            elif char == "'":
                keys.append(self.literal_string())
            else:
                match = _BARE.match(self.text, self.pos)
                if not match:
                    self.fail("expected a key, found %r" % char)
                keys.append(match.group(0))
                self.pos = match.end()
            self.skip_ws()
            if self.peek() != ".":
                return keys
            self.pos += 1

    # -- values --------------------------------------------------------------------------
    def value(self):
        char = self.peek()
        if self.peek(3) == '"""':
            return self.multiline_basic()
        if self.peek(3) == "'''":
            return self.multiline_literal()
        if char == '"':
            return self.basic_string()
        if char == "'":
            return self.literal_string()
        if char == "[":
            return self.array()
        if char == "{":
            return self.inline_table()
        for word, value in (("true", True), ("false", False)):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return value
        if _DATE.match(self.text, self.pos):
            self.fail("dates and times are not supported in a spec; quote the value")
        match = _NUMBER.match(self.text, self.pos)
        if not match:
            self.fail("expected a value, found %r" % char)
        self.pos = match.end()
        return self.number(match.group(0))

    def number(self, word):
        clean = word.replace("_", "")
        sign = -1 if clean.startswith("-") else 1
        body = clean.lstrip("+-")
        if body in ("inf", "nan"):
            return sign * float(body)
        if body[:2] in ("0x", "0o", "0b"):
            return sign * int(body[2:], {"0x": 16, "0o": 8, "0b": 2}[body[:2]])
        if any(c in body for c in ".eE"):
            return float(clean)
        if len(body) > 1 and body.startswith("0"):
            self.fail("leading zeros are not allowed in %r" % word)
        return int(clean)

    def basic_string(self):
        self.pos += 1
        out = []
        while True:
            char = self.peek()
            if char in ("", "\n"):
                self.fail("unterminated string")
            self.pos += 1
            if char == '"':
                return "".join(out)
            if char == "\\":
                out.append(self.escape())
            else:
                out.append(char)

    def escape(self):
        char = self.peek()
        self.pos += 1
        if char in _ESCAPES:
            return _ESCAPES[char]
        if char in ("u", "U"):
            size = 4 if char == "u" else 8
            digits = self.text[self.pos:self.pos + size]
            if not re.fullmatch(r"[0-9A-Fa-f]{%d}" % size, digits):
                self.fail("bad unicode escape")
            self.pos += size
            return chr(int(digits, 16))
        self.fail("unknown escape \\%s" % char)

    def literal_string(self):
        end = self.text.find("'", self.pos + 1)
        newline = self.text.find("\n", self.pos + 1)
        if end < 0 or (0 <= newline < end):
            self.fail("unterminated string")
        value = self.text[self.pos + 1:end]
        self.pos = end + 1
        return value

    def _multiline_start(self):
        self.pos += 3
        if self.peek() == "\n":
            self.pos += 1
        elif self.peek(2) == "\r\n":
            self.pos += 2

    def multiline_basic(self):
        self._multiline_start()
        out = []
        while True:
            if self.pos >= len(self.text):
                self.fail("unterminated string")
            if self.peek(3) == '"""':
                self.pos += 3
                return "".join(out)
            char = self.peek()
            self.pos += 1
            if char == "\\":
                if self.peek() in (" ", "\t", "\n", "\r"):
                    while self.peek() in (" ", "\t", "\n", "\r"):
                        self.pos += 1
                else:
                    out.append(self.escape())
            else:
                out.append(char)

    def multiline_literal(self):
        self._multiline_start()
        end = self.text.find("'''", self.pos)
        if end < 0:
            self.fail("unterminated string")
        value = self.text[self.pos:end]
        self.pos = end + 3
        return value

    def array(self):
        self.pos += 1
        items = []
        while True:
            self.skip_blank()
            if self.peek() == "]":
                self.pos += 1
                self.frozen.add(id(items))
                return items
            items.append(self.value())
            self.skip_blank()
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "]":
                self.fail("expected , or ] in an array")

    def inline_table(self):
        self.pos += 1
        table = {}
        self.skip_ws()
        if self.peek() == "}":
            self.pos += 1
            self.frozen.add(id(table))
            return table
        while True:
            keys = self.key()
            if self.peek() != "=":
                self.fail("expected = in an inline table")
            self.pos += 1
            self.skip_ws()
            self.assign(table, keys, self.value())
            self.skip_ws()
            if self.peek() == ",":
                self.pos += 1
                continue
            if self.peek() == "}":
                self.pos += 1
                self.frozen.add(id(table))
                return table
            self.fail("expected , or } in an inline table")
