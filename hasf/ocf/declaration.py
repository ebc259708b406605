"""An agent's declaration must agree with itself: checked once, when its class is defined.

Pacemaker believes the meta-data.  An advertised action whose handler is
missing fails only when Pacemaker first calls it (a migration, a reload, in
production); a handler nothing advertises is never called, so the work it
was written for silently does not happen; a parameter marked reloadable is
reloaded only by an agent that advertises reload-agent, and one that is not
marked makes Pacemaker restart the resource (and, through the orders, all
that depends on it).  Each of these is a DeclarationError (a TypeError)
raised while the agent's module is imported -- by the first test, by
`meta-data` -- not a surprise in a cluster.

Legacy `reload`: OCF 1.1 gives it another meaning (re-read the service's own
configuration; Pacemaker >= 2.1 never calls it for an OCF 1.1 agent), but a
resource manager that predates OCF 1.1 (Pacemaker 2.0) calls `reload`
instead of a restart whenever only parameters with unique="0" changed.
hasf agents keep no configuration outside their parameters, so `reload` is
true only for an agent that applies every unique="0" parameter live (all of
them reloadable); otherwise it is refused here.
"""

#: Actions every OCF agent implements and advertises (meta-data is the framework's).
MANDATORY = ("start", "stop", "monitor")
#: Answered by the framework for every agent, whatever the agent declares.
FRAMEWORK = frozenset(("meta-data", "validate-all"))


class DeclarationError(TypeError):
    """An agent class whose declared actions, handlers and parameters contradict each other."""


def check_declaration(cls, handlers):
    """Raise DeclarationError naming every contradiction in cls; handlers: {action: method}."""
    declared = {action.name for action in cls.actions}
    problems = _unknown_or_missing(cls, declared, handlers)
    problems += _undeclared_handlers(cls, declared, handlers)
    problems += _reload_problems(cls, declared)
    if problems:
        raise DeclarationError("%s: %s" % (cls.__name__, "; ".join(problems)))


def _unknown_or_missing(cls, declared, handlers):
    problems = ["declares action %r, which is not an OCF action (known: %s)"
                % (name, ", ".join(sorted(set(handlers) | FRAMEWORK)))
                for name in sorted(declared - set(handlers) - FRAMEWORK)]
    problems += ["does not declare the mandatory action %r" % name
                 for name in MANDATORY if name not in declared]
    for name in sorted((declared & set(handlers)) - FRAMEWORK):
        if not callable(getattr(cls, handlers[name], None)):
            problems.append("declares action %r but has no %s() handler"
                            % (name, handlers[name]))
    return problems


def _undeclared_handlers(cls, declared, handlers):
    reached = {handlers[name] for name in declared if name in handlers}
    problems = []
    for name, method in handlers.items():
        if name in FRAMEWORK or method in reached or not callable(getattr(cls, method, None)):
            continue
        reached.add(method)  # one message per method (monitor serves monitor and status)
        problems.append("has a %s() handler but does not declare action %r: Pacemaker "
                        "would never call it" % (method, name))
    return problems


def _reload_problems(cls, declared):
    names = {p.name for p in cls.parameters}
    problems = ["lists %r as reloadable, which is not one of its parameters" % name
                for name in cls.reloadable if name not in names]
    reloadable = [p.name for p in cls.parameters if cls.is_reloadable(p)]
    if reloadable and "reload-agent" not in declared:
        problems.append("marks %s reloadable but does not declare action 'reload-agent': "
                        "Pacemaker would restart the resource on every change"
                        % ", ".join(reloadable))
    if "reload-agent" in declared and not reloadable:
        problems.append("declares action 'reload-agent' but marks no parameter reloadable: "
                        "Pacemaker would never call it")
    if "reload" in declared:
        fixed = [p.name for p in cls.parameters if not p.unique and not cls.is_reloadable(p)]
        if fixed:
            problems.append("declares the legacy action 'reload', which a resource manager "
                            "older than OCF 1.1 calls instead of a restart when any unique=0 "
                            "parameter changes, but %s cannot change live (not reloadable)"
                            % ", ".join(fixed))
    return problems
