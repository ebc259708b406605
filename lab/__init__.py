"""The hasf lab: `make demo` runs hasf's agents against real backends on one machine.

The machinery that starts real daemons (libvirtd, ipmi_sim, Pacemaker
clusters in network namespaces) is shared with the test suite and lives in
tests/support/; the lab puts tests/ on sys.path to use it.
"""
