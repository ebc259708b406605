"""The agent log lives in `hasf.log`, shared with the fence agents and glue plugins,
which must not pay for importing the whole OCF framework on every exec."""

from hasf.log import LEVELS, AgentLog  # noqa: F401
