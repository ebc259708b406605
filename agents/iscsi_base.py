"""What ocf:hasf:iSCSITarget and ocf:hasf:iSCSILogicalUnit share.

Both manage objects inside one tgtd: the same `implementation` and
`tgt_control_port` parameters, the same tgtadm client (hasf.agents.tgt),
one lock per tgtd so two resources starting on a node never interleave
their tgtadm sequences (ClusterLabs' lock is not atomic, #637/#917) -- held
around each sequence only, never across a wait, so one stop stuck on a hung
backing store does not starve every other operation on the node -- and a
state file that remembers what this node created, so stop and probes stay
right when the parameters they are given are broken.
"""

from hasf import ocf
from hasf.ocf.remembering import RememberingAgent
from hasf.ocf.state import Lock, rsctmp

IMPLEMENTATIONS = ("tgt", "lio-t")
LIO = "lio-t"
_NAME_VALUE_FORBIDDEN = frozenset(",= \t\n\"'\\")


def implementation_parameter():
    return ocf.Parameter(
        "implementation", ocf.Choice(*IMPLEMENTATIONS), default="tgt",
        shortdesc="iSCSI target implementation",
        longdesc="The iSCSI target: tgt (tgtd, user space, driven through tgtadm) or lio-t (LIO, "
                 "the kernel's target, driven through configfs as targetcli would; no targetcli "
                 "process is run). ClusterLabs' older lio (lio_node/tcm_node) is not supported.")


def control_port_parameter():
    return ocf.Parameter(
        "tgt_control_port", ocf.Integer(minimum=0, maximum=65535), default=0,
        shortdesc="tgtd control port",
        longdesc="The management channel of the tgtd to use (tgtd -C N, socket "
                 "/run/tgtd/socket.N); 0 is the tgt service's default. Lets one node run "
                 "several tgtd instances.")


def additional_parameters_parameter(what):
    return ocf.Parameter(
        "additional_parameters", ocf.Checked(_is_name_value_list,
                                            "space-separated name=value pairs"),
        default="", shortdesc="Additional %s parameters" % what,
        longdesc="Space-separated name=value pairs passed to tgtd for the %s "
                 "(tgtadm --op update). Neither may contain whitespace, ',' or '='." % what)


def _is_name_value_list(text):
    for word in text.split():
        name, sep, value = word.partition("=")
        if not (sep and name and value) or set(name + value) & _NAME_VALUE_FORBIDDEN:
            return False
    return True


def name_value_pairs(text):
    return [tuple(word.split("=", 1)) for word in text.split()]


def is_tgt_value(text):
    """A value tgtadm can carry in --params name=value,...: no separators, no quotes."""
    return not set(text) & _NAME_VALUE_FORBIDDEN


class TgtResource(RememberingAgent):
    """Base of the agents whose resource lives inside a tgtd."""

    def validate(self):
        from hasf.agents.tgt import require_tgtadm

        if not self.lio:
            require_tgtadm()

    @property
    def lio(self):
        """Whether this resource lives in LIO (implementation=lio-t) rather than tgtd."""
        return self.params.implementation == LIO

    def lio_lock(self):
        """One lock per host for every hasf lio-t change (configfs is one tree)."""
        return Lock("hasf-lio", self.deadline, {"HA_RSCTMP": rsctmp(self.invocation.environ)})

    def lio_locked(self, func, *args):
        """func(*args) under the LIO lock: one configfs sequence, then the lock is free."""
        with self.lio_lock():
            return func(*args)

    def refuse_given(self, names, why):
        """NotConfigured when any of these parameters is set (they belong to the other
        implementation and would otherwise be silently ignored)."""
        given = [n for n in names if self.params.given(n)]
        if given:
            raise ocf.NotConfigured("%s: %s" % (", ".join(given), why))

    @property
    def tgt(self):
        from hasf.agents.tgt import Tgt

        port = self.params.tgt_control_port or 0
        return Tgt(port, self.deadline, self.log)

    def tgt_lock(self):
        """One lock per tgtd, shared by every hasf agent that changes it."""
        port = self.params.tgt_control_port or 0
        return Lock("hasf-tgt-%d" % port, self.deadline,
                    {"HA_RSCTMP": rsctmp(self.invocation.environ)})

    def _locked(self, func, *args):
        """func(*args) under the tgtd lock: one tgtadm sequence, then the lock is free."""
        with self.tgt_lock():
            return func(*args)

    def targets(self):
        """{iqn: Target}, or {} when tgtd (or tgt itself) is provably not there.

        A monitor (probes included) reads tgtd's report through its management
        socket: it runs every few seconds, and a tgtadm exec was most of its
        cost.  Start and stop read it through tgtadm, the same tool that makes
        their changes."""
        from hasf.agents.tgt import TgtdNotRunning

        try:
            return self.tgt.targets(socket=self.invocation.action == "monitor")
        except TgtdNotRunning as exc:
            self.log.debug(exc.message)
            return {}
