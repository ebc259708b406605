"""Typed agent parameters: declared once, parsed from OCF_RESKEY_*, documented in meta-data.

The OCF DTD that ocf-tester checks allows only string/integer/boolean/time
content types, and resource-agents' metadata.rng has no `time`; so durations
and enumerations appear as `string` in meta-data, while the framework still
parses and checks them here and their longdesc says what is accepted.
"""

from hasf.secret import Secret
from hasf.durations import HINT as DURATION_HINT
from hasf.durations import parse_duration
from hasf.truth import parse_bool



class ParamType:
    """How one kind of value is parsed, rendered and described."""

    ocf_type = "string"
    hint = ""

    def parse(self, text):
        return text

    def render(self, value):
        return str(value)


class String(ParamType):
    def __init__(self, pattern=None, hint=""):
        self.pattern = pattern
        self.hint = hint

    def parse(self, text):
        if self.pattern:
            import re  # only agents that declare patterns pay for re

            if not re.fullmatch(self.pattern, text):
                raise ValueError(self.hint or "does not match %s" % self.pattern)
        return text


class Checked(ParamType):
    """A string checked by a small predicate.

    No regular expressions: `re` costs every exec of a monitor ~2 ms to
    import and compile, and these rules read better as code anyway."""

    def __init__(self, check, hint):
        self.check = check
        self.hint = hint

    def parse(self, text):
        if not self.check(text):
            raise ValueError("must be " + self.hint)
        return text


class Path(ParamType):
    """An absolute file-system path (no NUL, no newline)."""

    hint = "an absolute path"

    def parse(self, text):
        if not text.startswith("/") or "\0" in text or "\n" in text:
            raise ValueError("must be an absolute path")
        return text


class Integer(ParamType):
    ocf_type = "integer"

    def __init__(self, minimum=None, maximum=None):
        self.minimum, self.maximum = minimum, maximum

    def parse(self, text):
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise ValueError("must be a whole number") from None
        if self.minimum is not None and value < self.minimum:
            raise ValueError("must be at least %d" % self.minimum)
        if self.maximum is not None and value > self.maximum:
            raise ValueError("must be at most %d" % self.maximum)
        return value


class Boolean(ParamType):
    ocf_type = "boolean"

    def parse(self, text):
        return parse_bool(text)

    def render(self, value):
        return "true" if value else "false"


class Duration(ParamType):
    """Seconds as a float; accepts 90, 90s, 1500ms, 2min, 1h (Pacemaker's units)."""

    hint = DURATION_HINT

    def parse(self, text):
        return parse_duration(text)

    def render(self, value):
        return "%gs" % value if isinstance(value, (int, float)) else str(value)


class Choice(ParamType):
    def __init__(self, *choices):
        self.choices = tuple(choices)
        self.hint = "one of: " + ", ".join(self.choices)

    def parse(self, text):
        if text not in self.choices:
            raise ValueError("must be " + self.hint)
        return text


class Parameter:
    """One OCF parameter of an agent.

    secret      the value is wrapped in hasf.secret.Secret (never logged)
    reloadable  a running resource takes a change by reload-agent, without a restart
                (OCF 1.1; the agent must advertise reload-agent: hasf.ocf.declaration)
    aliases     deprecated names still accepted (a warning is logged)
    """

    def __init__(self, name, kind=None, *, shortdesc, longdesc="", default=None,
                 required=False, unique=False, reloadable=False, secret=False, aliases=()):
        self.name = name
        self.kind = kind if kind is not None else String()
        self.shortdesc = shortdesc
        self.longdesc = longdesc or shortdesc
        self.default = default
        self.required = required
        self.unique = unique
        self.reloadable = reloadable
        self.secret = secret
        self.aliases = tuple(aliases)

    def describe(self):
        """The longdesc plus what values are accepted."""
        text = self.longdesc.rstrip()
        if self.kind.hint and self.kind.hint not in text:
            text = "%s (%s)." % (text.rstrip("."), self.kind.hint)
        elif not text.endswith("."):
            text += "."
        if self.aliases:
            text += " Deprecated alias: %s." % ", ".join(self.aliases)
        return text

    def default_text(self):
        if self.default is None or self.secret:
            return None
        return self.kind.render(self.default)


class Refusals:
    """An agent's refusal table, named (module, attribute) and imported on first use.

    The table (hasf.clusterlabs) is only needed when the environment holds a
    parameter the agent does not declare -- never on a normal monitor, whose
    exec cost is the agent's budget.  Iterating it loads it."""

    def __init__(self, module, attribute):
        self.where = (module, attribute)
        self._loaded = None

    def __iter__(self):
        if self._loaded is None:
            import importlib

            module, attribute = self.where
            self._loaded = tuple(getattr(importlib.import_module(module), attribute).refused)
        return iter(self._loaded)


def undeclared(names, declared):
    """The parameter names given that are not declared (Pacemaker's CRM_meta_* aside)."""
    return [n for n in names if n not in declared and not n.startswith("CRM_meta_")]


def refusals(refused, environ, declared=None):
    """The problems of every refused parameter set to something that would be ignored.

    With `declared` (every name and alias the agent takes), the table is consulted only
    when some OCF_RESKEY_* name is not among them."""
    if declared is not None and not undeclared(
            [k[11:] for k in environ if k.startswith("OCF_RESKEY_")], declared):
        return []
    problems = []
    for refusal in refused:
        text = environ.get("OCF_RESKEY_" + refusal.name)
        if text is not None and not refusal.passes(text):
            problems.append(refusal.problem())
    return problems


class Params:
    """Parsed parameter values by attribute; `given(name)` tells set-by-user from default."""

    def __init__(self, values, given):
        self.__dict__.update(values)
        self._given = frozenset(given)

    def given(self, name):
        return name in self._given

    def __repr__(self):
        shown = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        return "Params(%r)" % shown


def _raw_value(param, environ, log):
    for key in (param.name,) + param.aliases:
        text = environ.get("OCF_RESKEY_" + key)
        if text is not None:
            if key != param.name and log is not None:
                log.warning("parameter %s is deprecated; use %s" % (key, param.name))
            return text
    return None


def parse_params(parameters, environ, log=None, refused=()):
    """(Params, problems): every value parsed, every problem collected, none raised;
    `refused` (Refused) parameters set to something that matters are problems too."""
    values, given, problems = {}, [], []
    for param in parameters:
        text = _raw_value(param, environ, log)
        value = param.default
        if text is None or (text == "" and param.required):
            if param.required:
                problems.append("parameter %s is required but not set" % param.name)
        else:
            try:
                value = param.kind.parse(text)
                given.append(param.name)
            except ValueError as exc:
                shown = "(secret)" if param.secret else repr(text)
                problems.append("parameter %s=%s %s" % (param.name, shown, exc))
        if param.secret and value is not None:
            value = Secret(value)
        values[param.name] = value
    declared = {name for param in parameters for name in (param.name,) + param.aliases}
    return Params(values, given), problems + refusals(refused, environ, declared)


def hide_secrets(parameters, environ):
    """Remove the secret parameters' OCF_RESKEY_* variables from `environ` once parsed.

    Every program an agent runs inherits its environment: iscsiadm, udevadm or dmsetup have
    no use for a password, and each copy is one more /proc/PID/environ that shows it.  (The
    agent's own /proc/PID/environ keeps what execd passed; that is the OCF interface.)"""
    for param in parameters:
        if param.secret:
            for key in (param.name,) + param.aliases:
                environ.pop("OCF_RESKEY_" + key, None)
