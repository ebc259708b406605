"""A tiny XML element tree and serializer for the exec-hot paths.

Meta-data is printed by a freshly exec'd process; importing ElementTree
(pyexpat, ElementPath, re) or lxml costs more than everything else the run
does.  This writer builds a real tree and escapes every text and attribute
value on output -- it is not string joining -- and does nothing else.
Anything that parses XML uses lxml.
"""

_TEXT = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))
_ATTR = _TEXT + (('"', "&quot;"), ("\n", "&#10;"), ("\t", "&#9;"), ("\r", "&#13;"))


def escape(text, table=_TEXT):
    for char, entity in table:
        text = text.replace(char, entity)
    return text


class Element:
    __slots__ = ("tag", "attrib", "text", "children")

    def __init__(self, tag, attrib=None, text=None):
        self.tag = tag
        self.attrib = dict(attrib or {})
        self.text = text
        self.children = []

    def add(self, tag, attrib=None, text=None):
        """Append and return a child element."""
        child = Element(tag, attrib, text)
        self.children.append(child)
        return child

    def _lines(self, depth, out):
        pad = "  " * depth
        attrs = "".join(' %s="%s"' % (k, escape(str(v), _ATTR)) for k, v in self.attrib.items())
        if self.children:
            out.append("%s<%s%s>" % (pad, self.tag, attrs))
            if self.text:
                out.append(pad + "  " + escape(self.text))
            for child in self.children:
                child._lines(depth + 1, out)
            out.append("%s</%s>" % (pad, self.tag))
        elif self.text:
            out.append("%s<%s%s>%s</%s>" % (pad, self.tag, attrs, escape(self.text), self.tag))
        else:
            out.append("%s<%s%s/>" % (pad, self.tag, attrs))

    def serialize(self):
        out = []
        self._lines(0, out)
        return "\n".join(out) + "\n"
