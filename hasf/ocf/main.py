"""The one place where an OCF agent run becomes an exit status.

Order of business: answer meta-data/usage without touching the live system;
read the invocation and parameters; refuse bad parameters (all problems at
once) except on stop and probes, where refusing could get a node fenced or
a resource started twice; run the handler; turn typed errors into an
`ocf-exit-reason:` line and their exit code; turn anything unexpected into
OCF_ERR_GENERIC with a one-line reason -- never a traceback on stdout and
never a guessed "not running".
"""

import os
import sys

from hasf.errors import HasfError
from hasf.ocf.agent import HANDLERS
from hasf.ocf.environment import Invocation
from hasf.ocf.errors import ConfigurationProblems, OCFError
from hasf.ocf import exitcodes as rc
from hasf.ocf.log import AgentLog
from hasf.ocf.params import hide_secrets, parse_params
from hasf.secret import redact

#: Actions that change or establish state: parameters must be right, and validate() runs first.
VALIDATED = frozenset(("start", "migrate_to", "migrate_from", "reload", "reload-agent",
                       "promote", "demote"))


def exit_reason(message, environ=None, stream=None):
    """Write the exit-reason line Pacemaker shows in crm_mon and pcs status."""
    env = os.environ if environ is None else environ
    prefix = env.get("OCF_EXIT_REASON_PREFIX", "ocf-exit-reason:")
    text = " ".join(redact(str(message)).split())
    (stream or sys.stderr).write("%s%s\n" % (prefix, text))


def _error_answer(exc, invocation):
    """(exit code, exit reason) for a non-OCF typed error, telling the truth.

    A program that is not there is ERR_INSTALLED on a real action.  On a probe
    Pacemaker reads ERR_INSTALLED as "not running here", which only the agent
    can know (it raises ocf.NotInstalled when the resource cannot run on this
    node); a stray CommandNotFound -- a helper missing, a PATH wrong -- proves
    nothing about the resource, so the probe fails with ERR_GENERIC instead."""
    from hasf.runner import CommandNotFound  # only on the failure path

    if not isinstance(exc, CommandNotFound):
        return rc.ERR_GENERIC, exc.message
    if invocation.is_probe:
        return rc.ERR_GENERIC, ("cannot tell whether the resource runs here: %s (a missing "
                                "program is not proof that it does not)" % exc.message)
    return rc.ERR_INSTALLED, exc.message


def _dispatch(agent, invocation, problems):
    action = invocation.action
    if action == "validate-all":
        if problems:
            raise ConfigurationProblems(problems)
        agent.validate()
        return rc.SUCCESS
    if problems:
        if action != "stop" and not invocation.is_probe:
            raise ConfigurationProblems(problems)
        agent.log.warning("continuing %s despite: %s" % (action, "; ".join(problems)))
    if action in VALIDATED:
        agent.validate()
    status = getattr(agent, HANDLERS[action])()
    return rc.SUCCESS if status is None else int(status)


def run(agent_class, argv=None, environ=None, out=None, err=None):
    """Run one OCF action of agent_class; returns the exit status."""
    argv = sys.argv if argv is None else argv
    env = os.environ if environ is None else environ
    out, err = out or sys.stdout, err or sys.stderr
    action = argv[1] if len(argv) > 1 else ""
    if action == "meta-data":
        from hasf.ocf.metadata import build

        out.write(build(agent_class))
        return rc.SUCCESS
    if action in ("usage", "help", "-h", "--help"):
        out.write(agent_class.usage() + "\n")
        return rc.SUCCESS
    if not agent_class.supports(action):
        err.write(agent_class.usage() + "\n")
        return rc.ERR_ARGS if not action else rc.ERR_UNIMPLEMENTED
    invocation = Invocation(action, env)
    log = AgentLog(agent_class.name, invocation.instance, env, stream=err)
    params, problems = parse_params(agent_class.parameters, env, log, agent_class.refused)
    if environ is None:  # the process's own environment: what its children inherit
        hide_secrets(agent_class.parameters, os.environ)
    agent = agent_class(invocation, params, problems, log)
    try:
        status = _dispatch(agent, invocation, problems)
    except OCFError as exc:
        log.error("%s failed: %s" % (action, exc.message))
        exit_reason(exc.message, env, err)
        return exc.exit_code
    except HasfError as exc:
        code, reason = _error_answer(exc, invocation)
        log.error("%s failed: %s" % (action, reason))
        exit_reason(reason, env, err)
        return code
    except Exception as exc:  # noqa: BLE001 -- the last line of defence
        import traceback

        log.debug(traceback.format_exc())
        reason = "internal error in %s %s: %s: %s" % (agent_class.name, action,
                                                      type(exc).__name__, exc)
        log.error(reason)
        exit_reason(reason, env, err)
        return rc.ERR_GENERIC
    log.debug("%s -> %s" % (action, rc.ocf_name(status)))
    return status


def main_for(agent_class):
    """The entry point a launcher calls: exit with the action's status."""

    def main():
        return int(run(agent_class))

    return main
