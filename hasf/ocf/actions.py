"""Action declarations: what meta-data advertises (timeouts users copy into the CIB)."""


class Action:
    """An action as advertised in meta-data, with the default timeouts users copy."""

    def __init__(self, name, timeout, interval=None, depth=None, role=None, start_delay=None):
        self.name = name
        self.timeout = timeout
        self.interval = interval
        self.depth = depth
        self.role = role
        self.start_delay = start_delay

    def attributes(self):
        attrs = {"name": self.name, "timeout": "%ds" % self.timeout}
        if self.interval is not None:
            attrs["interval"] = "%ds" % self.interval
        if self.depth is not None:
            attrs["depth"] = str(self.depth)
        if self.role:
            attrs["role"] = self.role
        if self.start_delay is not None:
            attrs["start-delay"] = "%ds" % self.start_delay
        return attrs
