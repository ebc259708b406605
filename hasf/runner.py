"""The one command runner: every external program hasf calls goes through here.

Rules it enforces, so no caller can forget them:
- argv is a list; there is no shell anywhere in hasf.  The program is resolved
  to an absolute path (PATH plus the sbin directories cluster tools live in).
- `LC_ALL=C` so output parses the same on every node.
- A `Secret` is refused in argv; it may travel in the environment or on stdin.
  What is *shown* is redacted -- the logged command line, `Result.summary()`,
  every error text -- but `Result.stdout`/`stderr` stay as the tool wrote them,
  because agents parse them: a password "on" must not turn ipmitool's
  "Chassis Power is on" into "Chassis Power is ****".  Whoever shows captured
  output in full passes it through `hasf.secret.redact` first.
- A deadline: the call gets at most what is left of the operation's time, and
  *returns* within it: the child's own share ends early enough that TERM, a
  grace, KILL and a short reap fit before the limit (tools like ipmitool or
  virsh may fork helpers, so the whole process group is killed).  A child that
  survives SIGKILL (D state on dead storage) is abandoned, and `CommandTimeout`
  is raised in time for the agent to report it.
- Only a missing program is `CommandNotFound` (which an agent may read as "not
  installed here"); any other failure to start it -- EAGAIN, ENOMEM, EACCES,
  ETXTBSY -- is `CommandSpawnFailed`, an error, never a hint that nothing runs.
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
    """The program does not exist (ENOENT/ENOTDIR, or not on the search path).

    Only an agent knows whether that means "the resource cannot run here"; it
    says so with ocf.NotInstalled.  Uncaught, it is ERR_INSTALLED on a real
    action and ERR_GENERIC on a probe (see hasf.ocf.main)."""


class CommandSpawnFailed(CommandError):
    """The program exists but could not be started (EAGAIN, ENOMEM, EACCES, ETXTBSY...).

    A node out of processes or memory is not a node without the tool: this is
    an error (OCF_ERR_GENERIC), never read as "not installed" or "not running"."""

    def __init__(self, message, argv=None, errno=None):
        super().__init__(message, argv)
        self.errno = errno


class CommandTimeout(CommandError):
    """The program did not finish within its share of the operation timeout.

    `stderr_so_far` is what it had written to stderr before it was killed (for
    parsing only, like Result.stderr: never shown unredacted)."""

    stderr_so_far = ""


class CommandFailed(CommandError):
    """The program ran and exited non-zero (raised only when check=True)."""


class Result:
    """What a finished command left: rc, stdout and stderr, as the tool wrote them.

    stdout/stderr are for parsing and are *not* redacted; `summary()` and repr
    are what may be shown."""

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
        return redact("%s exited %d: %s" % (os.path.basename(self.argv[0]), self.rc, tail))

    def __repr__(self):
        return redact("Result(%r, rc=%d)" % (self.argv, self.rc))


def search_path(environ=None):
    env_path = (environ if environ is not None else os.environ).get("PATH", "")
    dirs = [d for d in env_path.split(os.pathsep) if d]
    return os.pathsep.join(dict.fromkeys(dirs + list(SBIN_DIRS)))


def resolve(program, environ=None):
    """The absolute path of program; CommandNotFound when it does not exist,
    CommandSpawnFailed when a path names something that exists but cannot run."""
    if os.sep in program:
        if os.access(program, os.X_OK) and not os.path.isdir(program):
            return program
        raise _unusable(program)
    for directory in search_path(environ).split(os.pathsep):
        candidate = os.path.join(directory, program)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    raise CommandNotFound("%s not found in %s" % (program, search_path(environ)), [program])


def _unusable(program):
    """Why an explicit path cannot run: absent (ENOENT/ENOTDIR) or anything else."""
    import errno  # only on the failure path

    try:
        os.stat(program)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return CommandNotFound("%s is not installed" % program, [program])
        return CommandSpawnFailed("cannot use %s: %s" % (program, exc.strerror), [program],
                                  exc.errno)
    return CommandSpawnFailed("%s exists but is not an executable file" % program, [program],
                              errno.EACCES)


def _spawn_error(argv, exc):
    """The typed error for an OSError from starting argv[0]."""
    import errno  # only on the failure path

    name = os.path.basename(argv[0])
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        # the program (or its #! interpreter) vanished after it was resolved
        return CommandNotFound("cannot execute %s: %s" % (argv[0], exc.strerror), argv)
    return CommandSpawnFailed("could not start %s: %s (errno %s)"
                              % (name, exc.strerror, errno.errorcode.get(exc.errno, exc.errno)),
                              argv, exc.errno)


def _timeout_error(argv, limit, exc):
    name = os.path.basename(argv[0])
    if exc.abandoned:
        text = ("%s did not finish within %.1fs and did not die after SIGKILL (stuck in the "
                "kernel, on dead storage?); abandoned" % (name, limit or 0))
    else:
        text = "%s did not finish within %.1fs and was killed" % (name, limit or 0)
    error = CommandTimeout(text, argv)
    error.stderr_so_far = exc.partial[1].decode("utf-8", "replace")
    return error


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
    timeout  seconds for this call; capped by `deadline`'s remaining time.  The call
             returns (or raises CommandTimeout) within it, ending of the child included.
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
    if deadline is not None:  # what resolving and logging took is not the child's to use
        limit = deadline.bound(timeout)
    try:
        rc, out, err = spawn(argv[0], argv, environ, data, limit, KILL_GRACE)
    except SpawnTimeout as exc:
        raise _timeout_error(argv, limit, exc) from None
    except OSError as exc:
        raise _spawn_error(argv, exc) from None
    result = Result(argv, rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
    if check and result.rc != 0:
        raise CommandFailed(result.summary(), argv, result)
    return result
