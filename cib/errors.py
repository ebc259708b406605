"""Typed errors of hasf.cib: the library raises, only hasf.cib.cli prints and exits.

A spec or a configuration is checked completely before anything is written;
every problem found is collected in a `Problems` list and raised once as
`SpecError`, so a user fixes a bad configuration in one round, not five.
"""

from hasf.errors import HasfError


class CibError(HasfError):
    """Something hasf-cib cannot do; str() is a message a person can act on."""


class ToolError(CibError):
    """A Pacemaker tool (crm_verify, crm_simulate, cibadmin, crm_diff, xmllint) said no."""

    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result


class Problems:
    """Errors and warnings collected while checking; `raise_if_any()` fails once."""

    def __init__(self):
        self.errors = []
        self.warnings = []

    def error(self, where, text):
        self.errors.append("%s: %s" % (where, text) if where else text)

    def warn(self, where, text):
        self.warnings.append("%s: %s" % (where, text) if where else text)

    def extend(self, other):
        self.errors.extend(other.errors)
        self.warnings.extend(other.warnings)

    def __bool__(self):
        return bool(self.errors)

    def raise_if_any(self, what="configuration"):
        if self.errors:
            raise SpecError(what, self.errors, self.warnings)


class SpecError(CibError):
    """A spec (or fragment request) with problems; `problems` lists all of them."""

    def __init__(self, what, problems, warnings=()):
        self.problems = list(problems)
        self.warnings = list(warnings)
        lines = ["%s has %d problem%s:" % (what, len(self.problems),
                                            "" if len(self.problems) == 1 else "s")]
        lines += ["  - " + p for p in self.problems]
        super().__init__("\n".join(lines))
