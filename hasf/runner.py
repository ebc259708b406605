"""The one command runner: every external program hasf calls goes through here.

Rules it enforces, so no caller can forget them:
- argv is a list; there is no shell anywhere in hasf.  The program is resolved
  to an absolute path (PATH plus the sbin directories cluster tools live in).
- `LC_ALL=C` so output parses the same on every node.
- A `Secret` is refused in argv; it may travel in the environment or on stdin.
  Captured output and every error text are redacted.
- A deadline: the call gets at most what is left of the operation's time; on
  expiry the whole process group is killed (tools like ipmitool or virsh may
  fork helpers) and `CommandTimeout` is raised.
"""

import os

from hasf.errors import HasfError
from hasf.secret import Secret, redact, reveal
from hasf.spawn import SpawnTimeout, spawn

SBIN_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin")
KILL_GRACE = 1.0


class CommandError(HasfError):
    """An external command could not be run or did not succeed."""

    def __init__(self, message, argv=None, result=None):
        super().__init__(message)
        self.argv = argv
        self.result = result


class CommandNotFound(CommandError):
    """The program is not installed (an agent maps this to OCF_ERR_INSTALLED)."""


class CommandTimeout(CommandError):
    """The program did not finish within its share of the operation timeout."""


class CommandFailed(CommandError):
    """The program ran and exited non-zero (raised only when check=True)."""


class Result:
    """What a finished command left: rc, stdout and stderr (text, redacted)."""

    __slots__ = ("argv", "rc", "stdout", "stderr")

    def __init__(self, argv, rc, stdout, stderr):
        self.argv, self.rc, self.stdout, self.stderr = argv, rc, stdout, stderr

    @property
    def ok(self):
        return self.rc == 0

    def summary(self):
        """One line for logs and exit reasons: the command and its last words."""
        words = (self.stderr.strip() or self.stdout.strip()).splitlines()
        tail = words[-1] if words else "no output"
        return "%s exited %d: %s" % (os.path.basename(self.argv[0]), self.rc, tail)

    def __repr__(self):
        return "Result(%r, rc=%d)" % (self.argv, self.rc)


def search_path(environ=None):
    env_path = (environ if environ is not None else os.environ).get("PATH", "")
    dirs = [d for d in env_path.split(os.pathsep) if d]
    return os.pathsep.join(dict.fromkeys(dirs + list(SBIN_DIRS)))


def resolve(program, environ=None):
    """The absolute path of program, or CommandNotFound."""
    if os.sep in program:
        if os.access(program, os.X_OK) and not os.path.isdir(program):
            return program
        raise CommandNotFound("%s is not installed or not executable" % program, [program])
    for directory in search_path(environ).split(os.pathsep):
        candidate = os.path.join(directory, program)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    raise CommandNotFound("%s not found in %s" % (program, search_path(environ)), [program])


def _check_argv(argv):
    if isinstance(argv, (str, bytes)) or not argv:
        raise TypeError("argv must be a non-empty list, not %r" % type(argv).__name__)
    for arg in argv:
        if isinstance(arg, Secret):
            raise TypeError("a secret must not be passed in argv; use env= or input=")
        if not isinstance(arg, str):
            raise TypeError("argv items must be str, got %r" % type(arg).__name__)


def _environment(env, base):
    merged = dict(os.environ if base is None else base)
    for key, value in (env or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = reveal(value)
    merged["LC_ALL"] = "C"
    merged["LANG"] = "C"
    merged["PATH"] = search_path(merged)
    return merged


def run(argv, *, input=None, env=None, base_env=None, timeout=None, deadline=None,
        check=False, log=None):
    """Run argv and return a `Result`.

    input    str or Secret written to stdin (stdin is /dev/null otherwise)
    env      extra variables (values may be Secrets; None removes a variable)
    timeout  seconds for this call; capped by `deadline`'s remaining time
    check    raise CommandFailed on a non-zero exit
    log      an object with .debug(); receives the redacted command line
    """
    _check_argv(argv)
    limit = timeout
    if deadline is not None:
        limit = deadline.bound(timeout)
        if limit <= 0:
            raise CommandTimeout("no time left to run %s" % argv[0], argv)
    environ = _environment(env, base_env)
    argv = [resolve(argv[0], environ)] + list(argv[1:])
    if log is not None:
        log.debug("running: %s" % redact(" ".join(argv)))
    data = reveal(input).encode() if input is not None else None
    try:
        rc, out, err = spawn(argv[0], argv, environ, data, limit, KILL_GRACE)
    except SpawnTimeout:
        raise CommandTimeout("%s did not finish within %.1fs and was killed"
                             % (os.path.basename(argv[0]), limit or 0), argv) from None
    except OSError as exc:
        raise CommandNotFound("cannot execute %s: %s" % (argv[0], exc.strerror), argv) from None
    result = Result(argv, rc, redact(out.decode("utf-8", "replace")),
                    redact(err.decode("utf-8", "replace")))
    if check and result.rc != 0:
        raise CommandFailed(result.summary(), argv, result)
    return result
