"""The declaration base class every hasf resource agent derives from.

An agent declares its name, version, descriptions, parameters and actions
once, as class attributes; meta-data, parameter parsing and validation,
action dispatch and usage text are all derived from that declaration.
Handlers are methods named after the OCF action (`migrate_to`, `validate`
for validate-all's own checks); they return None for success or an OCFExit,
and raise hasf.ocf.errors for failures.

The two lists an agent keeps -- the actions it advertises and the handlers it
implements -- are checked against each other when the class is defined
(hasf.ocf.declaration): an advertised action Pacemaker would call into
nothing, or a handler nothing advertises (Pacemaker never calls it), is a
DeclarationError at import, not a surprise in a cluster.
"""

from hasf.ocf.actions import Action
from hasf.ocf.declaration import check_declaration

#: OCF actions and the method each one calls ("meta-data" is answered by the framework).
HANDLERS = {
    "start": "start", "stop": "stop", "monitor": "monitor", "status": "monitor",
    "validate-all": "validate", "notify": "notify", "reload": "reload",
    "reload-agent": "reload_agent", "promote": "promote", "demote": "demote",
    "migrate_to": "migrate_to", "migrate_from": "migrate_from",
}


class ResourceAgent:
    name = ""
    version = "1.0"
    shortdesc = ""
    longdesc = ""
    parameters = ()
    #: hasf.ocf.params.Refused: the ClusterLabs counterpart's parameters this agent does not
    #: take (hasf.clusterlabs), refused when set instead of silently ignored
    refused = ()
    #: Actions with their advertised default timeouts (start/stop/monitor at least).
    actions = ()
    #: OCF_CHECK_LEVEL depths the monitor implements.
    check_levels = (0,)
    #: Parameters a running resource takes through reload-agent, by name, besides those
    #: declared Parameter(..., reloadable=True): the list sits next to the handler that
    #: applies them.  Each must name a parameter (checked at class definition).
    reloadable = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:  # a concrete agent; mixins and bases declare no name
            check_declaration(cls, HANDLERS)

    def __init__(self, invocation, params, problems, log):
        self.invocation = invocation
        self.params = params
        #: parameter problems tolerated because this is a stop or a probe
        self.problems = problems
        self.log = log

    # --- derived from the declaration -------------------------------------------------
    @classmethod
    def supports(cls, action):
        method = HANDLERS.get(action)
        if action == "validate-all":
            return True
        return method is not None and callable(getattr(cls, method, None))

    @classmethod
    def advertised_actions(cls):
        declared = list(cls.actions)
        names = {a.name for a in declared}
        for name, timeout in (("meta-data", 5), ("validate-all", 20)):
            if name not in names:
                declared.append(Action(name, timeout))
        return declared

    @classmethod
    def is_reloadable(cls, param):
        """Whether Pacemaker may apply a change of param by reload-agent (no restart)."""
        return param.reloadable or param.name in cls.reloadable

    @classmethod
    def usage(cls):
        names = [a.name for a in cls.advertised_actions()]
        return "usage: %s {%s}" % (cls.name, "|".join(dict.fromkeys(names)))

    @classmethod
    def parameter(cls, name):
        for param in cls.parameters:
            if param.name == name:
                return param
        raise KeyError(name)

    # --- conveniences for handlers ----------------------------------------------------
    @property
    def deadline(self):
        return self.invocation.deadline

    @property
    def check_level(self):
        return self.invocation.check_level(self.check_levels)

    def validate(self):
        """Checks beyond the parameter types (files, tools, consistency); raise on failure."""
        return None
