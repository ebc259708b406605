"""Fencing parameters: declared once, read from stdin, getopt or the environment.

A `Param` carries everything every front end needs: its fence-agents name,
deprecated aliases (ipaddr -> ip, login -> username, passwd -> password,
port -> plug, ...), its getopt short/long forms, its cluster-glue name, a type
and a default.  `parse()` turns (name, text) pairs from any source into typed
`Options`, collecting every problem before it fails once (ConfigError); a
parameter of the ClusterLabs counterpart that the device does not take
(hasf.clusterlabs) is one of those problems, never silently dropped.

No global registry: each device module lists its own parameters next to the
common ones (`COMMON`).  Secrets are wrapped in `hasf.secret.Secret` the
moment they are read, so they redact themselves everywhere afterwards.
"""

from hasf.secret import Secret
from hasf.truth import parse_bool
from hasf.stonith.errors import ConfigError

STRING, INTEGER, SECOND, BOOLEAN, SELECT = "string", "integer", "second", "boolean", "select"


class Param:
    """One parameter of a fence device (see module docstring)."""

    __slots__ = ("name", "kind", "default", "shortdesc", "aliases", "short", "long", "metavar",
                 "required", "secret", "choices", "glue_name", "glue", "fence", "longdesc")

    def __init__(self, name, kind=STRING, default=None, shortdesc="", *, aliases=(), short=None,
                 long=None, metavar=None, required=False, secret=False, choices=None,
                 glue_name=None, glue=True, fence=True, longdesc=None):
        self.name = name
        self.kind = SELECT if choices else kind
        self.default = default
        self.shortdesc = shortdesc or name
        self.aliases = tuple(aliases)
        self.short = short
        self.long = long or name.replace("_", "-")
        self.metavar = metavar or name
        self.required = required
        self.secret = secret
        self.choices = tuple(choices) if choices else None
        self.glue_name = glue_name or name
        self.glue = glue
        self.fence = fence
        self.longdesc = longdesc

    @property
    def flag(self):
        """A boolean getopt option takes no argument (-P, --lanplus)."""
        return self.kind == BOOLEAN

    def getopt_text(self):
        """fence-agents' `<getopt mixed=...>` text, e.g. "-a, --ip=[ip]"."""
        long = "--" + self.long + ("" if self.flag else "=[%s]" % self.metavar)
        return ("-%s, %s" % (self.short, long)) if self.short else long

    def convert(self, text):
        """The typed value of `text`, or ValueError with a reason."""
        if self.secret:
            return Secret(text)
        text = text.strip()
        if self.kind == BOOLEAN:
            return parse_bool(text, empty=True)  # a bare flag line means on
        if self.kind == INTEGER:
            try:
                return int(text)
            except ValueError:
                raise ValueError("expected an integer") from None
        if self.kind == SECOND:
            try:
                value = float(text[:-1] if text.endswith("s") else text)
            except ValueError:
                raise ValueError("expected a number of seconds") from None
            if value < 0:
                raise ValueError("must not be negative")
            return value
        if self.kind == SELECT:
            low = text.lower()
            if low not in self.choices:
                raise ValueError("expected one of %s" % ", ".join(self.choices))
            return low
        return text


class Options:
    """Typed parameter values; attribute access by the parameter's name."""

    def __init__(self, values, given, params):
        self._values = values
        self._given = given
        self._params = params

    def __getattr__(self, name):
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def get(self, name, default=None):
        value = self._values.get(name)
        return default if value is None else value

    def given(self, name):
        return name in self._given

    def set(self, name, value):
        self._values[name] = value
        self._given.add(name)

    def __repr__(self):  # secrets print as ****
        return "Options(%r)" % {k: v for k, v in self._values.items() if v is not None}


class ParamSet:
    """An ordered set of parameters with lookup by every name they answer to."""

    def __init__(self, *groups, compat=None):
        self.params = []
        self.index = {}
        #: the device's key in hasf.clusterlabs.FENCE: the ClusterLabs counterparts'
        #: parameters it does not take; set to anything that matters, one fails the parse.
        #: Loaded only when a name is unknown (a fence agent's exec does not pay for it).
        self.compat = compat
        for group in groups:
            for param in group:
                self.add(param)

    def add(self, param):
        if param.name in self.index:  # a device may override a common parameter
            old = self.index[param.name]
            self.params[self.params.index(old)] = param
            for key in [k for k, v in self.index.items() if v is old]:
                del self.index[key]
        else:
            self.params.append(param)
        for key in (param.name, param.glue_name, param.long) + param.aliases:
            for variant in (key, key.replace("-", "_"), key.replace("_", "-")):
                self.index.setdefault(variant, param)

    def lookup(self, name):
        return self.index.get(name)

    def refusal(self, name):
        """The hasf.refusal.Refused entry for an unknown name, or None."""
        if self.compat is None:
            return None
        from hasf.clusterlabs import FENCE

        wanted = name.replace("-", "_")
        return next((r for r in FENCE[self.compat].refused if r.name == wanted), None)

    def __iter__(self):
        return iter(self.params)

    # -- sources --------------------------------------------------------------
    def parse(self, pairs, ignore=(), warn=None, require=True):
        """Typed `Options` from (name, text) pairs; the last duplicate wins.

        Unknown names are ignored with a warning (fence-agents' rule), except
        those in `ignore` (nodename, agent, ...).  Every bad value and missing
        required parameter is collected into one ConfigError.
        """
        problems, raw = [], {}
        for name, text in pairs:
            param = self.lookup(name)
            if param is None:
                refusal = self.refusal(name)
                if refusal is not None and not refusal.passes(text):
                    problems.append(refusal.problem())
                elif refusal is None and name not in ignore and warn is not None:
                    warn("ignoring unknown parameter %r" % name)
                continue
            raw[param.name] = (name, text)
        values, given = {}, set()
        for param in self.params:
            if param.name in raw:
                name, text = raw[param.name]
                try:
                    values[param.name] = param.convert(text)
                    given.add(param.name)
                except ValueError as exc:
                    shown = "****" if param.secret else repr(text)
                    problems.append("%s=%s: %s" % (name, shown, exc))
            else:
                values[param.name] = param.default
        if require:
            for param in self.params:
                if param.required and values.get(param.name) in (None, ""):
                    problems.append("parameter %s is required" % param.name)
        if problems:
            raise ConfigError(problems)
        return Options(values, given, self)

    def from_stdin(self, text):
        """(name, value) pairs from fence-agents' stdin: name=value lines, '#' comments."""
        pairs = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, _, value = line.partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            pairs.append((name.strip(), value))
        return pairs

    def from_argv(self, argv):
        """(name, value) pairs from getopt options with fence-agents' short/long names."""
        import getopt

        shorts, longs, by_opt = "", [], {}
        for param in self.params:
            if not param.fence:
                continue
            names = [param.long] + [a.replace("_", "-") for a in param.aliases]
            for long in dict.fromkeys(names):
                if long in by_opt and by_opt[long] is not param:
                    continue
                longs.append(long if param.flag else long + "=")
                by_opt["--" + long] = param
            if param.short and "-" + param.short not in by_opt:
                shorts += param.short + ("" if param.flag else ":")
                by_opt["-" + param.short] = param
        try:
            found, rest = getopt.gnu_getopt(argv, shorts, longs)
        except getopt.GetoptError as exc:
            raise ConfigError(str(exc)) from None
        if rest:
            raise ConfigError("unexpected arguments: %s" % " ".join(rest))
        pairs = []
        for opt, value in found:
            param = by_opt[opt]
            pairs.append((param.name, "1" if param.flag else value))
        return pairs

    def from_environ(self, environ):
        """(name, value) pairs for every name or alias present in the environment."""
        pairs = []
        for name in environ:
            if name in self.index:
                pairs.append((name, environ[name]))
        # the primary name wins over an alias, whatever the environment's order
        pairs.sort(key=lambda p: p[0] == self.index[p[0]].name)
        return pairs
