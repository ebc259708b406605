"""HasfTest: a Dummy-like agent written with hasf.ocf, used only by the tests.

It keeps its "running" state in a file, like heartbeat/Dummy, so ocf-tester
and the framework tests exercise every lifecycle rule without a real service.
Not installed.
"""

import os

from hasf import ocf
from hasf.ocf.state import StateFile, rsctmp, safe_name


class HasfTest(ocf.ResourceAgent):
    name = "HasfTest"
    version = "1.0"
    shortdesc = "Test agent for the hasf framework"
    longdesc = "Keeps a state file; 'running' means the file exists. <&\"> are escaped."
    parameters = (
        ocf.Parameter("state", ocf.Path(), shortdesc="State file",
                      longdesc="Where the running state is kept (default: under HA_RSCTMP)."),
        ocf.Parameter("fake", ocf.String(), default="dummy", reloadable=True,
                      shortdesc="Fake attribute", longdesc="Written into the state file."),
        ocf.Parameter("delay", ocf.Duration(), default=0.0, shortdesc="Start delay"),
        ocf.Parameter("mode", ocf.Choice("fast", "safe"), default="safe", shortdesc="Mode"),
        ocf.Parameter("passwd", ocf.String(), secret=True, shortdesc="A secret",
                      aliases=("password",)),
        ocf.Parameter("count", ocf.Integer(minimum=0, maximum=10), default=1,
                      shortdesc="A number"),
    )
    actions = (
        ocf.Action("start", 20), ocf.Action("stop", 20),
        ocf.Action("monitor", 20, interval=10, depth=0),
        ocf.Action("monitor", 20, interval=60, depth=10),
        ocf.Action("reload-agent", 20), ocf.Action("migrate_to", 20),
        ocf.Action("migrate_from", 20),
    )
    check_levels = (0, 10)

    @property
    def state(self):
        if self.params.state:
            return StateFile(os.path.basename(self.params.state),
                             {"HA_RSCTMP": os.path.dirname(self.params.state)})
        return StateFile(safe_name("HasfTest", self.invocation.instance or "default"),
                         {"HA_RSCTMP": rsctmp(self.invocation.environ)})

    def validate(self):
        if self.params.state and not os.path.isdir(os.path.dirname(self.params.state)):
            raise ocf.NotConfigured("directory of state=%s does not exist" % self.params.state)

    def start(self):
        if self.params.delay:
            self.deadline.sleep(self.params.delay)
        self.state.write(self.params.fake)

    def stop(self):
        self.state.remove()

    def monitor(self):
        text = self.state.read()
        if text is None:
            return ocf.NOT_RUNNING
        if self.check_level >= 10 and text != self.params.fake:
            raise ocf.GenericError("state file holds %r, expected %r" % (text, self.params.fake))
        return ocf.SUCCESS

    def reload_agent(self):
        """`fake` (reloadable) written into the running instance's state file."""
        if self.state.exists():
            self.state.write(self.params.fake)
        self.log.info("reload-agent: fake=%s" % self.params.fake)

    def migrate_to(self):
        self.state.remove()

    def migrate_from(self):
        self.state.write(self.params.fake)


main = ocf.main_for(HasfTest)
