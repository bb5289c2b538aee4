"""Fetch Debian packages and unpack them without installing anything on the host."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


class PackageError(RuntimeError):
    """A Debian package could not be found, fetched or unpacked."""


class NoSuchPackage(PackageError):
    """The apt lists have no such package: Debian dropped it, or it never was."""

    def __init__(self, package: str) -> None:
        super().__init__(f"Debian package {package} not found in the apt lists")
        self.package = package


def _apt(argv: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PackageError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc.stdout


def show(package: str) -> dict[str, str]:
    """The fields of the candidate version of `package` (apt-cache show).

    NoSuchPackage if the apt lists, refreshed once, do not have it.
    """
    text = _show(package)
    if not text.strip():
        # A fresh machine may have no package lists yet, and old ones may predate it.
        _apt(["apt-get", "update", "-qq"])
        text = _show(package)
    fields: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z-]+): (.*)$", line)
        if m:
            fields[m.group(1)] = m.group(2)
    if "Version" not in fields:
        raise NoSuchPackage(package)
    return fields


def _show(package: str) -> str:
    """apt-cache show's text, or "" where apt says it has no such package."""
    argv = ["apt-cache", "show", "--no-all-versions", package]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0 and "No packages found" not in proc.stderr:
        raise PackageError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc.stdout if proc.returncode == 0 else ""


LISTS = Path("/var/lib/apt/lists")
LISTS_MAX_AGE = 24 * 3600  # seconds; Debian publishes a kernel ABI every few weeks


def lists_age() -> float | None:
    """Seconds since apt's package lists were fetched; None if there are none."""
    lists = list(LISTS.glob("*_Packages*"))
    if not lists:
        return None
    return time.time() - max(p.stat().st_mtime for p in lists)


def refresh_lists(max_age: float = LISTS_MAX_AGE) -> None:
    """apt-get update, if the lists are missing or older than `max_age` seconds."""
    age = lists_age()
    if age is not None and age < max_age:
        return
    try:
        _apt(["apt-get", "update", "-qq"])
    except PackageError:
        if age is None:
            raise
        # Offline, or not root: lists a few days old still name real packages.


def versions(package: str) -> list[str]:
    """Every version of `package` that apt's lists offer, as apt-cache madison lists
    them (newest first); [] where they have none."""
    out = _apt(["apt-cache", "madison", package])
    found = [line.split("|")[1].strip() for line in out.splitlines() if line.count("|") >= 2]
    return list(dict.fromkeys(found))


def names_matching(pattern: str) -> list[str]:
    """The names of the real packages (not virtual ones) whose name matches `pattern`,
    a POSIX extended regular expression, in the apt lists."""
    out = _apt(["apt-cache", "search", "--names-only", pattern])
    return sorted(line.split(" - ", 1)[0].strip() for line in out.splitlines() if line.strip())


def depends(package: str) -> list[str]:
    """Names of the packages `package` depends on (alternatives: the first)."""
    names = []
    for clause in show(package).get("Depends", "").split(","):
        first = clause.split("|")[0].strip()
        if first:
            names.append(first.split()[0])
    return names


def download(package: str, downloads: Path, version: str | None = None) -> Path:
    """The .deb of `package` (of `version`, else apt's candidate) in `downloads`,
    fetched there with apt-get once."""
    downloads.mkdir(parents=True, exist_ok=True)
    # apt-get names a file by package and version, an epoch's colon escaped.
    pattern = f"{package}_{version.replace(':', '%3a') if version else '*'}_*.deb"
    debs = list(downloads.glob(pattern))
    if not debs:
        spec = f"{package}={version}" if version else package
        with tempfile.TemporaryDirectory(dir=downloads) as tmp:
            _apt(["apt-get", "download", "-q", spec], cwd=Path(tmp))
            for deb in Path(tmp).glob("*.deb"):
                shutil.move(deb, downloads / deb.name)
        debs = list(downloads.glob(pattern))
    if not debs:
        raise PackageError(f"apt-get download {package} produced no .deb")
    return debs[0]


def deb_version(deb: Path) -> str:
    """The version a .deb file says it is, read from the file alone (no apt lists)."""
    return _apt(["dpkg-deb", "--field", str(deb), "Version"]).strip()


def extract(deb: Path, dest: Path) -> None:
    """dpkg -x: the files of `deb` under `dest`, nothing installed."""
    dest.mkdir(parents=True, exist_ok=True)
    _apt(["dpkg-deb", "-x", str(deb), str(dest)])


def unpack(package: str, dest: Path, downloads: Path, version: str | None = None) -> str:
    """Download `package` (of `version`, else apt's candidate) into `downloads` (once)
    and dpkg -x it into `dest`.

    Returns the package version. Nothing is installed on the host.
    """
    if version is None:
        version = show(package)["Version"]
    else:
        refresh_lists()  # a pinned version may be newer than lists a day old
    deb = download(package, downloads, version=version)
    extract(deb, dest)
    return deb_version(deb)
