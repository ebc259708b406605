"""Stand-in for Fedora's %pyproject_buildrequires (tests/rpm/redhat.macros): prints the
build dependencies pyproject.toml's [build-system] asks for, as python3dist() names.

Like the real generator: pip >= 19 (which the macros run), every build-system requirement,
and `wheel`, which setuptools' get_requires_for_build_wheel adds below setuptools 70.1.
Only the version operators this project uses (>=, ==, >, <=, <) are translated.
"""

import re
import sys

try:
    import tomllib
except ImportError:  # below 3.11 (the stand-ins run 3.11)
    import tomli as tomllib

REQUIREMENT = re.compile(r"^([A-Za-z0-9_.-]+)\s*(?:(>=|==|<=|>|<)\s*([0-9][0-9.]*))?\s*$")


def main():
    with open("pyproject.toml", "rb") as handle:
        requires = tomllib.load(handle)["build-system"]["requires"]
    print("python3dist(pip) >= 19")
    for text in requires:
        match = REQUIREMENT.match(text)
        if not match:
            sys.exit("buildrequires.py: cannot translate %r" % text)
        name, op, version = match.groups()
        print("python3dist(%s)%s" % (name.lower(), " %s %s" % (op, version) if op else ""))
    print("python3dist(wheel)")


if __name__ == "__main__":
    main()
