"""The Debian packages the project needs, read from runner/host-packages.txt.

That file is the one list, and this module the one reader: the Makefile installs
a set from it (`make html` SETS["html"], `make test` SETS["test"]), the Docker
image takes SETS["image"] and the reproduce bundle's README names the bundle's.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
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


UNLESS = "unless="


@dataclass(frozen=True)
class Listed:
    role: str
    # A program whose presence makes the package unneeded: the machine has its own
    # (npm from another vendor's nodejs, which Debian's npm would conflict with).
    unless: str = ""


def entries(path: Path = LIST) -> dict[str, Listed]:
    """{package: its role and condition}, in the file's order."""
    found: dict[str, Listed] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].split()
        if not line:
            continue
        unless = line[2].removeprefix(UNLESS) if len(line) == 3 else ""
        well_formed = len(line) == 2 or (len(line) == 3 and line[2].startswith(UNLESS) and unless)
        if not well_formed or line[1] not in ROLES:
            raise PackageListError(
                f"{path.name}:{number}: expected 'PACKAGE ROLE [unless=PROGRAM]' with ROLE "
                f"one of {ROLES}: {raw!r}"
            )
        package, role = line[:2]
        if package in found:
            raise PackageListError(f"{path.name}:{number}: {package} is listed twice")
        found[package] = Listed(role, unless)
    return found


def read(path: Path = LIST) -> dict[str, str]:
    """{package: role}, in the file's order."""
    return {package: listed.role for package, listed in entries(path).items()}


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


def packages(
    *names: str,
    path: Path = LIST,
    present: Callable[[str], str | None] = shutil.which,
) -> list[str]:
    """The packages of the roles or sets `names`, in the file's order, less those
    marked unless=PROGRAM where `present` finds that program (on PATH by default)."""
    roles = roles_of(*names)
    return [
        pkg
        for pkg, listed in entries(path).items()
        if listed.role in roles and not (listed.unless and present(listed.unless))
    ]


def listed(*names: str, path: Path = LIST) -> list[str]:
    """Every package of the roles or sets `names`, conditions aside."""
    return packages(*names, path=path, present=lambda program: None)


if __name__ == "__main__":
    # `python3 runner/host_packages.py NAME...`: the list, one per line, for shell
    # scripts; NAME is a set (html, test, ...) or a role (a bundle's README names
    # roles: `runner local`), and none means every package.
    import sys

    try:
        print("\n".join(packages(*(sys.argv[1:] or ROLES))))
    except ValueError as exc:  # a misspelt name must stop the install, not install nothing
        sys.exit(f"host_packages.py: {exc}")
