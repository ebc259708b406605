"""One device definition feeds both front ends.

A `Definition` names a device, lists its parameters (on top of `COMMON`),
describes it for meta-data and `getinfo-*`, and has a factory that builds the
`Device` from typed options and the resolved password.  The fence agent
(`fence_agent.run`) and the cluster-glue plugin (`glue.run`) are generic:
they differ only in where options come from and how results are reported.
"""

from hasf.stonith.engine import Engine
from hasf.stonith.params import BOOLEAN, INTEGER, SECOND, Param, ParamSet

FENCE_ACTIONS = ("on", "off", "reboot", "status", "list", "list-status", "monitor", "metadata",
                 "validate-all")

# Parameters every device understands, with fence-agents' names and aliases.
COMMON = (
    Param("action", default="reboot", shortdesc="Fencing action", short="o", aliases=("option",),
          glue=False),
    Param("plug", shortdesc="Node or target to fence (Pacemaker sends it)", short="n",
          aliases=("port",), glue=False),
    Param("nodename", shortdesc="Node being fenced (Pacemaker sends it; used in messages)",
          fence=False, glue=False),
    Param("host_map", shortdesc="Node to target map: node1:target1;node2:target2",
          aliases=("hostlist", "pcmk_host_map_hasf"), glue_name="hostlist",
          longdesc="Which node is which target. Pacemaker's pcmk_host_map syntax "
                   "(node1:t1;node2:t2) or cluster-glue's host list (node1[:t1] node2[:t2], "
                   "spaces or commas). Node names match case-insensitively."),
    Param("username", shortdesc="Login name", short="l", aliases=("login",), metavar="name"),
    Param("password", shortdesc="Login password or passphrase", short="p",
          aliases=("passwd",), secret=True),
    Param("password_script", shortdesc="Command that prints the password (run without a shell)",
          short="S", aliases=("passwd_script",), metavar="script"),
    Param("password_file", shortdesc="File whose first line is the password", metavar="file"),
    Param("delay", SECOND, 0.0, "Wait X seconds before fencing is started"),
    Param("random_delay", SECOND, 0.0,
          "Wait a random 0..X seconds (on top of delay) before fencing: two-node clusters"),
    Param("power_timeout", SECOND, 20.0, "Test X seconds for status change after ON/OFF"),
    Param("power_wait", SECOND, 0.0, "Wait X seconds after issuing ON/OFF before polling"),
    Param("stonith_status_sleep", SECOND, 0.5,
          "Sleep X seconds between status calls during a STONITH action"),
    Param("retry_on", INTEGER, 1, "Count of attempts to retry power on"),
    Param("login_timeout", SECOND, 5.0, "Wait X seconds for a connection to the device"),
    Param("shell_timeout", SECOND, 3.0, "Wait X seconds for a command to the device to finish"),
    Param("verbose", BOOLEAN, False, "Verbose mode", short="v", glue=False),
    Param("verbose_level", INTEGER, 0, "Level of debugging detail (> 0: debug log)", glue=False),
    Param("disable_timeout", shortdesc="Accepted for fence-agents compatibility (no effect)",
          glue=False),
    Param("plug_separator", shortdesc="Accepted for fence-agents compatibility (one plug per "
          "call)", default=",", glue=False),
    Param("quiet", BOOLEAN, False, "Disable logging to stderr", short="q", glue=False),
    Param("debug_file", shortdesc="Write debug information to given file", short="D",
          aliases=("debug",), glue=False),
    Param("version", BOOLEAN, False, "Display version information and exit", short="V",
          glue=False),
    Param("help", BOOLEAN, False, "Display help and exit", short="h", glue=False),
)

# Names Pacemaker (or fenced) may send that are not parameters of ours.
IGNORED = ("agent", "separator")


class Definition:
    def __init__(self, name, shortdesc, longdesc, params, factory, *, vendor_url="",
                 glue_info=None, password_env=(), single_target=False,
                 actions=FENCE_ACTIONS, needs_password=False, compat=False):
        self.name = name
        self.agent = "fence_hasf_" + name
        self.plugin = "hasf-" + name
        self.shortdesc = shortdesc
        self.longdesc = longdesc
        self.vendor_url = vendor_url
        self.device_params = tuple(params)
        self.factory = factory
        self.glue_info = dict(glue_info or {})
        self.password_env = tuple(password_env)
        self.single_target = single_target
        self.actions = tuple(actions)
        self.needs_password = needs_password
        #: compat: the device has a table in hasf.clusterlabs.FENCE (under self.agent)
        self.compat = self.agent if compat else None
        self._params = None

    @property
    def params(self):
        if self._params is None:
            self._params = ParamSet(COMMON, self.device_params, compat=self.compat)
        return self._params

    def engine(self, opts, device, log):
        return Engine(device, log, power_timeout=opts.power_timeout, power_wait=opts.power_wait,
                      status_interval=opts.stonith_status_sleep, retry_on=opts.retry_on,
                      delay=opts.delay, random_delay=opts.random_delay,
                      command_timeout=opts.login_timeout + opts.shell_timeout)
