"""Pacemaker's own tools, run through hasf.runner: the only door to the system.

`Tools` says *where* the commands that touch a CIB run: on this host (the
live CIB), against a file (`cib_file=` -> `CIB_file` in their environment),
or inside another context through an argv prefix -- e.g.
`["nsenter", "-t", PID, "-n", "-m", "-u", "--"]` to reach a cluster node
living in namespaces.  Offline work (xmllint, crm_verify -x, crm_simulate
-x, crm_diff) always runs here on temporary files; only `cibadmin` queries
and patches go through the prefix.
"""

import glob
import os
import re
import shutil
import tempfile

from hasf.cib.errors import CibError, ToolError
from hasf.runner import CommandError, run

SCHEMA_DIR = "/usr/share/pacemaker"
TIMEOUT = 120


def schema_dir():
    return os.environ.get("PCMK_schema_directory") or SCHEMA_DIR


def _version(name):
    match = re.match(r"pacemaker-(\d+)\.(\d+)\.rng\Z", os.path.basename(name))
    return (int(match.group(1)), int(match.group(2))) if match else None


def newest_schema(directory=None):
    """'pacemaker-3.9' on Pacemaker 2.1.5: the newest pacemaker-X.Y.rng installed."""
    found = [p for p in glob.glob(os.path.join(directory or schema_dir(), "pacemaker-*.rng"))
             if _version(p)]
    if not found:
        raise CibError("no pacemaker-X.Y.rng in %s: is Pacemaker installed?"
                       % (directory or schema_dir()))
    return os.path.basename(max(found, key=_version))[:-4]


def schema_path(schema, directory=None):
    path = os.path.join(directory or schema_dir(), schema + ".rng")
    if not os.path.isfile(path):
        raise CibError("schema %s is not installed (%s missing); installed newest: %s" % (
            schema, path, newest_schema(directory)))
    return path


class Scratch:
    """A private temporary directory (0700) for tool input and output files; its files
    are created 0600 (they hold whole CIBs, fence passwords included)."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="hasf-cib-")

    def write(self, name, text):
        from hasf.cib.files import create_private

        path = os.path.join(self.path, name)
        create_private(path, text)
        return path

    def read(self, name):
        with open(os.path.join(self.path, name), encoding="utf-8") as handle:
            return handle.read()

    def file(self, name):
        return os.path.join(self.path, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


class Tools:
    """Runs Pacemaker CLI tools; prefix/cib_file choose which CIB cibadmin talks to."""

    def __init__(self, prefix=(), cib_file=None, env=None, timeout=TIMEOUT):
        self.prefix = list(prefix)
        self.cib_file = cib_file
        self.env = dict(env or {})
        self.timeout = timeout

    # -- running -----------------------------------------------------------------------
    def local(self, argv, input=None, ok=(0,)):
        """An offline tool on this host; ToolError unless its rc is in ok."""
        try:
            result = run(argv, input=input, timeout=self.timeout)
        except CommandError as exc:
            raise ToolError(str(exc)) from None
        if result.rc not in ok:
            raise ToolError(result.summary(), result)
        return result

    def cluster(self, argv, input=None, ok=(0,)):
        """A tool that talks to the CIB (live, file, or through the prefix)."""
        env = dict(self.env)
        if self.cib_file:
            env["CIB_file"] = os.path.abspath(self.cib_file)
        try:
            result = run(self.prefix + list(argv), input=input, env=env, timeout=self.timeout)
        except CommandError as exc:
            raise ToolError(str(exc)) from None
        if result.rc not in ok:
            raise ToolError(result.summary(), result)
        return result

    def describe(self):
        if self.cib_file:
            return "file CIB %s" % self.cib_file
        if os.environ.get("CIB_file") and "CIB_file" not in self.env:
            return "file CIB %s (from $CIB_file)" % os.environ["CIB_file"]
        if self.prefix:
            return "live CIB via %s" % " ".join(self.prefix)
        return "live CIB"

    # -- the CIB -----------------------------------------------------------------------
    def query(self):
        return self.cluster(["cibadmin", "--query"]).stdout

    def patch(self, diff_xml):
        return self.cluster(["cibadmin", "--patch", "--xml-pipe"], input=diff_xml)

    # -- offline -----------------------------------------------------------------------
    def xmllint(self, path, schema_file):
        """rc, messages of a Relax-NG validation."""
        result = self.local(["xmllint", "--noout", "--relaxng", schema_file, path], ok=(0, 3, 4))
        return result.rc, result.stderr

    def diff(self, old_path, new_path):
        """The --no-version patch turning old into new, or None when they are the same."""
        result = self.local(["crm_diff", "--no-version", "-o", old_path, "-n", new_path],
                            ok=(0, 1))
        return result.stdout if result.rc == 1 else None

    def verify(self, path):
        return self.local(["crm_verify", "-V", "-x", path], ok=(0, 78, 100, 105))

    def simulate(self, path, out_path, up=(), down=(), fail=(), execute=True, quorum=None):
        """crm_simulate; execute=False only applies the node events (no transition run);
        quorum=True/False sets whether the partition has quorum (corosync decides that
        in a live cluster; a file CIB only knows it from have-quorum)."""
        argv = ["crm_simulate"] + (["-S"] if execute else ["-Q"]) + ["-x", path, "-O", out_path]
        if quorum is not None:
            argv.append("--quorum=%s" % ("true" if quorum else "false"))
        for flag, nodes in (("-u", up), ("-d", down), ("-f", fail)):
            for node in nodes:
                argv += [flag, node]
        return self.local(argv)

    def status(self, path):
        """crm_mon's XML view of a file CIB (resources, nodes) -- Pacemaker's reading of it."""
        try:
            result = run(["crm_mon", "-1", "--output-as=xml", "--inactive"],
                         env={"CIB_file": os.path.abspath(path)}, timeout=self.timeout)
        except CommandError as exc:
            raise ToolError(str(exc)) from None
        if result.rc != 0:
            raise ToolError(result.summary(), result)
        return result.stdout
