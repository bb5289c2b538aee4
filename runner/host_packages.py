"""The Debian packages the project needs, read from runner/host-packages.txt.

That file is the one list: the Makefile installs from it, the Docker image and
the reproduce bundle's README take their packages from here.
"""

from __future__ import annotations

from pathlib import Path

LIST = Path(__file__).resolve().parent / "host-packages.txt"
ROLES = ("runner", "local", "dev")


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


def packages(*roles: str, path: Path = LIST) -> list[str]:
    """The packages needed in any of `roles`, in the file's order."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}; known: {ROLES}")
    return [pkg for pkg, role in read(path).items() if role in roles]


if __name__ == "__main__":
    # `python3 runner/host_packages.py ROLE...`: the list, one per line, for shell scripts.
    import sys

    print("\n".join(packages(*(sys.argv[1:] or ROLES))))
