"""The host's Debian: which archive to build guests from, and host tools to install.

Why: the guest image must come from the same Debian archive the host's apt
already uses (a CI machine's mirror, a proxy), never a hard-coded one, and
a fresh machine must get the host tools (mmdebstrap, qemu, ipmi_sim, ...)
with one apt-get instead of a list of manual steps.
"""

import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request

SUITE = "bookworm"


class GuestImageUnavailable(RuntimeError):
    """The guest image cannot be built here for a reason that is not a bug
    (no root, no Debian mirror configured or reachable)."""


# -- apt sources ---------------------------------------------------------------
def _deb822_stanzas(text):
    stanza, key = {}, None
    for line in text.splitlines() + [""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if stanza:
                yield stanza
            stanza, key = {}, None
        elif line[0] in " \t" and key:
            stanza[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            stanza[key] = value.strip()


def _one_line_entries(text):
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        line = re.sub(r"\[[^\]]*\]", " ", line[4:])
        fields = line.split()
        if len(fields) >= 3:
            yield fields[0], [fields[1]], fields[2:]


def debian_mirrors(suite=SUITE, apt_dir="/etc/apt"):
    """One-line ``deb URI SUITE main`` entries for ``suite`` and its -updates and
    -security suites, as configured for the host's apt (main only)."""
    entries = []
    files = []
    if os.path.isfile(os.path.join(apt_dir, "sources.list")):
        files.append(os.path.join(apt_dir, "sources.list"))
    parts = os.path.join(apt_dir, "sources.list.d")
    if os.path.isdir(parts):
        files += [os.path.join(parts, n) for n in sorted(os.listdir(parts))]
    for path in files:
        with open(path, errors="replace") as handle:
            text = handle.read()
        if path.endswith(".list"):
            entries += list(_one_line_entries(text))
        elif path.endswith(".sources"):
            for stanza in _deb822_stanzas(text):
                if stanza.get("enabled", "yes").lower() == "no":
                    continue
                if "deb" not in stanza.get("types", "").split():
                    continue
                entries.append((stanza.get("uris", "").split()[0] if stanza.get("uris") else "",
                                stanza.get("suites", "").split(),
                                stanza.get("components", "").split()))
    wanted = {suite, suite + "-updates", suite + "-security"}
    lines = []
    for uri, suites, components in entries:
        if not uri or "main" not in components:
            continue
        for name in suites:
            line = "deb %s %s main" % (uri, name)
            if name in wanted and line not in lines:
                lines.append(line)
    if not any(line.split()[2] == suite for line in lines):
        raise GuestImageUnavailable("no Debian %s mirror with 'main' configured in %s/sources.list*"
                                    % (suite, apt_dir))
    return lines


def check_reachable(mirrors, timeout=15):
    for line in mirrors:
        _, uri, suite, _ = line.split()
        if not uri.startswith(("http://", "https://")):
            continue
        url = "%s/dists/%s/Release" % (uri.rstrip("/"), suite)
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"),
                                        timeout=timeout):
                pass
        except urllib.error.HTTPError:
            pass  # it answered: reachable (a real archive problem fails the build)
        except (urllib.error.URLError, OSError) as exc:
            raise GuestImageUnavailable("the Debian mirror is not reachable (%s: %s)"
                                        % (url, exc)) from exc


# -- host packages ---------------------------------------------------------------
def _apt_get(*args, timeout=900):
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(["apt-get", "-q", "-o", "DPkg::Lock::Timeout=300"] + list(args),
                          capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)


def ensure_host_packages(tools):
    """Install (apt-get, Debian's archive) the packages of any missing host tool."""
    missing = sorted({pkg for tool, pkg in tools.items() if not shutil.which(tool)})
    if not missing:
        return []
    if os.geteuid() != 0:
        raise GuestImageUnavailable("needs root to install %s" % " ".join(missing))
    install = ("install", "-y", "--no-install-recommends") + tuple(missing)
    proc = _apt_get(*install)
    if proc.returncode != 0:
        update = _apt_get("update", timeout=600)
        if update.returncode != 0:
            raise GuestImageUnavailable("apt-get update failed: %s" % update.stderr[-2000:])
        proc = _apt_get(*install)
    if proc.returncode != 0:
        raise RuntimeError("apt-get install %s failed: %s" % (" ".join(missing),
                                                              proc.stderr[-2000:]))
    still = sorted(tool for tool in tools if not shutil.which(tool))
    if still:
        raise RuntimeError("installed %s but still missing: %s" % (missing, still))
    return missing
