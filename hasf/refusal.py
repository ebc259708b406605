"""A parameter of a ClusterLabs agent that its hasf counterpart does not take.

The entries of hasf.clusterlabs' tables, for the OCF agents and the fence
devices alike.  Imported with the tables, only when an agent meets a
parameter it does not declare (hasf.ocf.params.Refusals,
hasf.stonith.params.ParamSet.refusal): a normal monitor never pays for it.
"""

from hasf.truth import parse_bool


class Refused:
    """A parameter of the ClusterLabs counterpart that this agent does not take.

    Pacemaker hands every instance attribute to the agent, declared in
    meta-data or not; a configuration carried over from ClusterLabs' agent
    would otherwise lose that parameter's meaning without a word.  Set, it is
    a configuration problem whose reason names the hasf way (`instead`).
    `harmless` values ask for nothing the agent does not do anyway (a feature
    switched off, the counterpart's default) and pass; OFF stands for every
    spelling of a false boolean.  An empty value always passes (= unset).
    """

    OFF = object()

    def __init__(self, name, instead, harmless=(), origin=""):
        self.name = name
        self.instead = instead
        self.harmless = tuple(harmless)
        self.origin = origin

    def passes(self, text):
        """True when `text` asks for nothing this agent would leave undone."""
        text = text.strip()
        if not text or text in self.harmless:
            return True
        if self.OFF in self.harmless:
            try:
                return parse_bool(text) is False
            except ValueError:
                return False
        return False

    def problem(self):
        origin = " (%s)" % self.origin if self.origin else ""
        return "parameter %s%s is not taken by hasf: %s" % (self.name, origin, self.instead)
