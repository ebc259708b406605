"""Agents that remember, per resource instance, what they set up on this node.

Stop and probes must stay right when the parameters they are given are
unusable (a typo, a config file on storage that is gone): a wrong "stopped"
lets two nodes use one resource.  So start records the identity of what it
created in a state file under HA_RSCTMP (cleared at boot, exactly when what
it describes is gone too), and stop/monitor fall back to it.
"""

from hasf.ocf.agent import ResourceAgent
from hasf.ocf.errors import NotConfigured
from hasf.ocf.exitcodes import NOT_RUNNING
from hasf.ocf.state import StateFile, rsctmp, safe_name


class RememberingAgent(ResourceAgent):
    """monitor and stop work from the identity (parameters, else the record); a subclass
    implements state_of(*identity) -> SUCCESS/NOT_RUNNING (or raises) and
    release(*identity), which returns only once the resource is gone (or raises)."""

    #: the parameters that identify the resource, kept in the state file in this order
    identity_fields = ()

    def monitor(self):
        identity = self.identity()
        if identity is None:
            if self.invocation.is_probe:
                return NOT_RUNNING  # nothing was ever started here with these parameters
            raise NotConfigured("; ".join(self.problems))
        return self.state_of(*identity)

    def stop(self):
        identity = self.identity()
        if identity is None:
            self.log.warning("no usable %s and nothing recorded: nothing was started here"
                             % "/".join(self.identity_fields))
            return None
        self.release(*identity)
        self.forget()
        return None

    def state_of(self, *identity):
        raise NotImplementedError

    def release(self, *identity):
        raise NotImplementedError

    def state_file(self):
        key = self.invocation.instance or "default"
        return StateFile(safe_name(self.name, key), {"HA_RSCTMP": rsctmp(self.invocation.environ)})

    def remember(self, *values):
        """Record the identity fields (then any extra values) of what start created."""
        self.state_file().write("\n".join(str(v) for v in values) + "\n")

    def forget(self):
        self.state_file().remove()

    def recorded(self):
        """The recorded lines, or None."""
        text = self.state_file().read()
        return None if text is None else text.splitlines()

    def identity(self):
        """The identity fields from the parameters, or -- when they are unusable on a
        stop or probe -- from the state file; None when neither knows."""
        values = tuple(getattr(self.params, f) for f in self.identity_fields)
        if all(v is not None for v in values):
            return values
        stored = self.recorded()
        if stored is None or len(stored) < len(self.identity_fields):
            return None
        stored = stored[:len(self.identity_fields)]
        self.log.warning("parameters unusable (%s); using what start recorded: %s"
                         % ("; ".join(self.problems) or "missing", " ".join(stored)))
        return tuple(self.parameter(f).kind.parse(v) for f, v in zip(self.identity_fields,
                                                                      stored))
