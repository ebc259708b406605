"""Where a fence device's password comes from.

In order: the `password` parameter (fence agent stdin / getopt, glue
environment), a `password_file` (first line), a `password_script` (run
through the one command runner, argv split like a command line but without
any shell; first line of its output), then the device's environment variable
(e.g. IPMI_PASSWORD).  A password_script's output is never shown, not even
when it fails: a script that prints the password and then exits non-zero
must not put it in an exit message or a log (its output is not a known
secret yet, so redaction cannot catch it).  A failure says only how it
failed: exit code, signal or timeout.  The result is a `Secret`: it travels to tools only via
environment variables, stdin or files, and is redacted from every text.
"""

import os

from hasf.secret import Secret
from hasf.stonith.errors import ConfigError


def read_file(path):
    try:
        with open(path) as handle:
            line = handle.readline()
    except OSError as exc:
        raise ConfigError("cannot read password file %s: %s" % (path, exc.strerror)) from None
    return Secret(line.rstrip("\r\n"))


SCRIPT_TIMEOUT = 30


def run_script(script, deadline, log=None):
    import shlex

    from hasf import runner

    try:
        argv = shlex.split(script)
    except ValueError as exc:
        raise ConfigError("password_script does not parse as a command line: %s" % exc) from None
    if not argv:
        raise ConfigError("password_script is empty")
    if log is not None:
        # not the runner's "running: <argv>": a script's arguments may carry a token
        log.debug("running password_script %s" % argv[0])
    try:
        result = runner.run(argv, deadline=deadline, timeout=SCRIPT_TIMEOUT)
    except runner.CommandTimeout:
        raise ConfigError("password_script %s did not finish in time and was killed"
                          % argv[0]) from None
    except runner.CommandError as exc:
        raise ConfigError("password_script: %s" % exc) from None
    if result.rc < 0:
        raise ConfigError("password_script %s was killed by signal %d (its output is not "
                          "shown)" % (argv[0], -result.rc))
    if result.rc != 0:
        raise ConfigError("password_script %s exited with code %d (its output is not shown)"
                          % (argv[0], result.rc))
    lines = result.stdout.splitlines()
    if not lines or not lines[0]:
        raise ConfigError("password_script %s printed no password" % argv[0])
    return Secret(lines[0])


def password(opts, deadline, env_names=(), environ=None, log=None):
    """The configured password as a Secret, or None when none is configured."""
    value = opts.get("password")
    if value:
        if opts.get("passwd_method") == "file":  # external/ipmi: passwd names a file
            return read_file(value.reveal())
        return value
    if opts.get("password_file"):
        return read_file(opts.password_file)
    if opts.get("password_script"):
        return run_script(opts.password_script, deadline, log)
    environ = os.environ if environ is None else environ
    for name in env_names:
        if environ.get(name):
            return Secret(environ[name])
    return None
