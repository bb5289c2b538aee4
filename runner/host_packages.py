"""The Debian packages the project needs, read from runner/host-packages.txt.

That file is the one list, and this module the one reader: the Makefile installs
a set from it (`make html` SETS["html"], `make test` SETS["test"]), the Docker
image takes SETS["image"] and the reproduce bundle's README names the bundle's.
"""

from __future__ import annotations

from pathlib import Path

LIST = Path(__file__).resolve().parent / "host-packages.txt"
ROLES = ("runner", "local", "build", "tests")
# What each consumer installs, as roles of the list. Each set holds the one before
# it, so a machine that ran `make test` can also build, and the image's packages
# are on every host.
SETS: dict[str, tuple[str, ...]] = {
    "image": ("runner",),
    "bundle": ("runner", "local"),
    "html": ("runner", "local", "build"),
    "test": ROLES,
}


class PackageListError(ValueError):
    """The package list is malformed; names the file and line."""


def read(path: Path = LIST) -> dict[str, str]:
    """{package: role}, in the file's order."""
    found: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].split()
        if not line:
            continue
        if len(line) != 2 or line[1] not in ROLES:
            raise PackageListError(
                f"{path.name}:{number}: expected 'PACKAGE ROLE' with ROLE one of {ROLES}: {raw!r}"
            )
        package, role = line
        if package in found:
            raise PackageListError(f"{path.name}:{number}: {package} is listed twice")
        found[package] = role
    return found


def roles_of(*names: str) -> tuple[str, ...]:
    """The roles that `names` stand for: each is a role or the name of a set."""
    roles: list[str] = []
    for name in names:
        if name in SETS:
            roles += SETS[name]
        elif name in ROLES:
            roles.append(name)
        else:
            raise ValueError(f"unknown role or set {name!r}; roles: {ROLES}, sets: {tuple(SETS)}")
    return tuple(dict.fromkeys(roles))


def packages(*names: str, path: Path = LIST) -> list[str]:
    """The packages of the roles or sets `names`, in the file's order."""
    roles = roles_of(*names)
    return [pkg for pkg, role in read(path).items() if role in roles]


if __name__ == "__main__":
    # `python3 runner/host_packages.py NAME...`: the list, one per line, for shell
    # scripts; NAME is a set (html, test, ...) or a role (a bundle's README names
    # roles: `runner local`), and none means every package.
    import sys

    try:
        print("\n".join(packages(*(sys.argv[1:] or ROLES))))
    except ValueError as exc:  # a misspelt name must stop the install, not install nothing
        sys.exit(f"host_packages.py: {exc}")
