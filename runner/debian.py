"""Fetch Debian packages and unpack them without installing anything on the host."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path


class PackageError(RuntimeError):
    """A Debian package could not be found, fetched or unpacked."""


def _apt(argv: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PackageError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc.stdout


def show(package: str) -> dict[str, str]:
    """The fields of the candidate version of `package` (apt-cache show)."""
    try:
        text = _apt(["apt-cache", "show", "--no-all-versions", package])
    except PackageError:
        text = ""
    if not text.strip():
        # A fresh machine may have no package lists yet.
        _apt(["apt-get", "update", "-qq"])
        text = _apt(["apt-cache", "show", "--no-all-versions", package])
    fields: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z-]+): (.*)$", line)
        if m:
            fields[m.group(1)] = m.group(2)
    if "Version" not in fields:
        raise PackageError(f"Debian package {package} not found in the apt lists")
    return fields


def depends(package: str) -> list[str]:
    """Names of the packages `package` depends on (alternatives: the first)."""
    names = []
    for clause in show(package).get("Depends", "").split(","):
        first = clause.split("|")[0].strip()
        if first:
            names.append(first.split()[0])
    return names


def unpack(package: str, dest: Path, downloads: Path) -> str:
    """Download `package` into `downloads` (once) and dpkg -x it into `dest`.

    Returns the package version. Nothing is installed on the host.
    """
    version = show(package)["Version"]
    downloads.mkdir(parents=True, exist_ok=True)
    debs = list(downloads.glob(f"{package}_*.deb"))
    if not debs:
        with tempfile.TemporaryDirectory(dir=downloads) as tmp:
            _apt(["apt-get", "download", "-q", package], cwd=Path(tmp))
            for deb in Path(tmp).glob("*.deb"):
                shutil.move(deb, downloads / deb.name)
        debs = list(downloads.glob(f"{package}_*.deb"))
    if not debs:
        raise PackageError(f"apt-get download {package} produced no .deb")
    dest.mkdir(parents=True, exist_ok=True)
    _apt(["dpkg-deb", "-x", str(debs[0]), str(dest)])
    return version
