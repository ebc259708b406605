"""ocf:hasf:iSCSITarget with implementation=lio-t: the target as LIO's configfs holds it.

ClusterLabs' lio-t runs targetcli (a Python start-up and a walk of the
whole configfs tree per call, the CHAP password in its argv); here start,
monitor and stop are reads and writes of configfs (lio_configfs), each in a
bounded child, under the per-host lock every hasf lio-t resource takes.
What only start and validation need is imported there: a monitor's exec
pays for the modules it runs.

Differences from ClusterLabs' lio-t, each for exactness:
- CHAP is enforced whenever incoming_username is set (attrib/authentication=1);
  ClusterLabs leaves authentication=0 when allowed_initiators is empty, so an
  initiator without CHAP still logs in;
- the password reaches the kernel as a write to a configfs file made 0600
  first (configfs shows it to every local user otherwise), never in argv;
- mutual CHAP (outgoing_username/outgoing_password), and *_file variants;
- every portal is created, the default 0.0.0.0:3260 too;
- a TPG that exists but is disabled is an error (something is half there),
  not "stopped"; "stopped" only when configfs provably has no such target.
"""

from hasf.agents import lio
from hasf.agents import lio_configfs as cfs
from hasf import ocf

#: the longest CHAP name or secret LIO keeps (MAX_USER_LEN / MAX_PASS_LEN, 256 with NUL)
CHAP_MAX = 255


def read_secret_file(path, name):
    """The first line of a secret file, as a Secret (never shown)."""
    from hasf.secret import Secret

    try:
        with open(path) as handle:
            line = handle.readline()
    except FileNotFoundError:
        raise ocf.NotInstalled("%s %s does not exist on this node" % (name, path)) from None
    except OSError as exc:
        raise ocf.GenericError("cannot read %s %s: %s" % (name, path, exc.strerror)) from None
    return Secret(line.rstrip("\r\n"))


def credential(params, user, password):
    """(user, Secret) of one CHAP direction, or None when it is not configured."""
    name = getattr(params, user)
    secret = getattr(params, password)
    path = getattr(params, password + "_file")
    if secret and path:
        raise ocf.NotConfigured("set %s or %s_file, not both" % (password, password))
    if path:
        secret = read_secret_file(path, password + "_file")
    if not name and not secret:
        return None
    if not name or not secret:
        raise ocf.NotConfigured("CHAP needs both %s and %s (or %s_file)"
                                % (user, password, password))
    for what, value in ((user, name), (password, secret.reveal())):
        if len(value) > CHAP_MAX or any(c.isspace() for c in value):
            raise ocf.NotConfigured("%s must be at most %d characters without whitespace"
                                    % (what, CHAP_MAX))
    return name, secret


class LioTarget:
    """The lio-t half of ISCSITarget; `agent` supplies params, log, deadline and lock."""

    def __init__(self, agent):
        self.agent = agent
        self.params = agent.params
        self.log = agent.log
        self.configfs = cfs.Configfs(agent.deadline, agent.log)

    def validate(self):
        from hasf.addresses import is_iscsi_name

        for word in self.params.allowed_initiators.split():
            if not is_iscsi_name(word):
                raise ocf.NotConfigured("allowed_initiators: LIO admits initiators by name "
                                        "only (iqn./eui./naa.), not %r" % word)
        for portal in self.params.portals.split():
            if "/" in portal:
                raise ocf.NotConfigured("portals: %r is a network; LIO listens on addresses"
                                        % portal)
        if self.params.tid is not None:
            self.log.warning("tid is a tgt setting; LIO has none (ignored)")
        self.chap()

    def chap(self):
        """(incoming, outgoing) credentials; outgoing (mutual CHAP) only with incoming."""
        incoming = credential(self.params, "incoming_username", "incoming_password")
        outgoing = credential(self.params, "outgoing_username", "outgoing_password")
        if outgoing and not incoming:
            raise ocf.NotConfigured("mutual CHAP (outgoing_username) needs incoming CHAP too")
        return incoming, outgoing

    # --- monitor --------------------------------------------------------------------------
    def state_of(self, iqn):
        state, why = self.configfs.ask(lio.target_state, (cfs.ROOT, cfs.SYSFS, iqn),
                                       "target %s" % iqn)
        if state == "absent":
            if why == "no-tpg":
                raise ocf.GenericError("target %s is in configfs without its TPG 1 (half "
                                       "made or half removed)" % iqn)
            return lio.absent_or_unknown(why, "target %s" % iqn)
        if state != "enabled":
            raise ocf.GenericError("target %s exists but its TPG 1 is disabled: initiators "
                                   "cannot log in" % iqn)
        return ocf.SUCCESS

    def detail(self, iqn):
        return self.configfs.ask(lio.target_detail, (cfs.ROOT, cfs.SYSFS, iqn),
                                 "target %s" % iqn)

    # --- start ----------------------------------------------------------------------------
    def start(self):
        iqn = self.params.iqn
        incoming, outgoing = self.chap()
        with self.agent.lio_lock():
            self.ensure_fabric()
            detail = self.detail(iqn)
            if "absent" not in detail:
                if detail["enable"] != "1":
                    raise ocf.GenericError("target %s exists but is disabled; stop the "
                                           "resource to remove it" % iqn)
                self.log.info("target %s already exists" % iqn)
                self.agent.remember(iqn)
                return None
            plan = self.plan(iqn, incoming, outgoing)
            self.agent.remember(iqn)
            try:
                self.configfs.apply(plan, "creating target %s" % iqn)
            except cfs.ChangeRefused as exc:
                self.log.error("start failed (%s); removing what it made" % exc.message)
                if self.configfs.undo(plan, exc.done, "target %s" % iqn):
                    self.agent.forget()
                raise
        self.log.info("target %s created" % iqn)
        return None

    def ensure_fabric(self):
        """LIO's iscsi fabric directory (mkdir loads iscsi_target_mod); target_core_mod
        itself is loaded with modprobe when configfs does not show it yet, and configfs
        is mounted when nothing (no systemd) has mounted it."""
        from hasf.runner import CommandNotFound, run

        have = self.configfs.ask(cfs.exists, (self.configfs.path(),), "LIO")
        if not have:
            try:
                run(["modprobe", "target_core_mod"], timeout=30, deadline=self.agent.deadline,
                    log=self.log)
            except CommandNotFound:
                raise ocf.NotInstalled("LIO is not loaded and modprobe is missing") from None
            if not self.configfs.ask(cfs.exists, (self.configfs.path(),), "LIO") and \
                    not self.configfs.ask(cfs.mounted, (cfs.ROOT,), "the configfs mount"):
                self.configfs.mount("start of target %s" % self.params.iqn)
            if not self.configfs.ask(cfs.exists, (self.configfs.path(),), "LIO"):
                raise ocf.NotInstalled("LIO is not available: %s does not exist (is configfs "
                                       "mounted, target_core_mod installed?)"
                                       % self.configfs.path())
        if not self.configfs.ask(cfs.exists, (self.configfs.path("iscsi"),), "LIO"):
            self.configfs.apply([("mkdir", self.configfs.path("iscsi"))], "loading LIO iSCSI")

    def plan(self, iqn, incoming, outgoing):
        """The steps that make the target, in the order the kernel needs them."""
        from hasf.addresses import format_portal, split_portal

        root = cfs.ROOT
        tpg = lambda *p: lio.tpg_path(root, iqn, *p)  # noqa: E731 -- a path shorthand
        steps = [("mkdir", self.configfs.path("iscsi", iqn)), ("mkdir", tpg())]
        for portal in self.params.portals.split():
            host, port = split_portal(portal)
            steps.append(("mkdir", tpg("np", format_portal(host, port))))
        for name, value in _pairs(self.params.additional_parameters):
            steps.append(("write", tpg("param", name), value))
        initiators = self.params.allowed_initiators.split()
        if initiators:
            steps.append(("write", tpg("attrib", "generate_node_acls"), "0"))
            for initiator in initiators:
                steps.append(("mkdir", tpg("acls", initiator)))
                if incoming:
                    steps += _auth(tpg("acls", initiator, "auth"), incoming, outgoing)
        else:
            steps += [("write", tpg("attrib", "generate_node_acls"), "1"),
                      ("write", tpg("attrib", "cache_dynamic_acls"), "1"),
                      ("write", tpg("attrib", "demo_mode_write_protect"), "0")]
            if incoming:
                steps += _auth(tpg("auth"), incoming, outgoing)
        steps.append(("write", tpg("attrib", "authentication"), "1" if incoming else "0"))
        steps.append(("write", tpg("enable"), "1"))
        return steps

    # --- stop -----------------------------------------------------------------------------
    def release(self, iqn):
        """Rounds of removal (the lock held only during a round) until configfs has no such
        target; disabling the TPG first closes its sessions and refuses new logins."""
        if not self.agent.deadline.wait_for(lambda: self.agent.lio_locked(self._remove, iqn),
                                            0.2, 1.0):
            raise ocf.GenericError("target %s is still in configfs after %.0fs of stop"
                                   % (iqn, self.agent.deadline.seconds))

    def _remove(self, iqn):
        detail = self.detail(iqn)
        if "absent" in detail:
            if detail["absent"] == "unmounted":
                self.configfs.mount("stop of target %s" % iqn)
                return False    # the next round sees the kernel's view
            if detail["absent"] != "no-tpg":
                return True
            detail = {}
        try:
            self.configfs.apply(lio.removal_of_target(cfs.ROOT, iqn, detail),
                                "removing target %s" % iqn, tolerate_absent=True)
        except cfs.ChangeRefused as exc:
            self.log.warning("%s (will retry)" % exc.message)
        after = self.detail(iqn)
        return "absent" in after and after["absent"] != "no-tpg"


def _pairs(text):
    return [tuple(word.split("=", 1)) for word in text.split()]


def _auth(auth_dir, incoming, outgoing):
    user, secret = incoming
    if outgoing:
        return lio.auth_steps(auth_dir, user, secret.reveal(), outgoing[0],
                              outgoing[1].reveal())
    return lio.auth_steps(auth_dir, user, secret.reveal())
