"""The Debian base image the sandbox image is built FROM.

Debian's own `debian:<suite>-slim` is used when the engine has it or can pull it.
Where no registry answers, the same suite is made from Debian's packages with
debootstrap (minbase) and imported as `kblog/debian-base:<suite>`; Docker never
needs a registry then, only Debian's package archive.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from runner import config

if TYPE_CHECKING:
    import docker

Log = Callable[[str], None]

SUITE = config.GUEST_SUITE
OFFICIAL = f"debian:{SUITE}-slim"
LOCAL = f"kblog/debian-base:{SUITE}"

# Left empty in the image: apt's downloads and lists, logs, and files the engine
# supplies to every container (resolv.conf, hostname).
_JUNK = (
    "var/lib/apt/lists",
    "var/cache/apt/archives",
    "var/log",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
)


class BaseImageError(RuntimeError):
    """No base image could be found, pulled or made."""


def _has(client: docker.DockerClient, ref: str) -> bool:
    import docker.errors

    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def _try_pull(client: docker.DockerClient, ref: str, log: Log) -> bool:
    import docker.errors

    repo, tag = ref.split(":")
    log(f"base image: pulling {ref}")
    try:
        client.images.pull(repo, tag=tag)
    except docker.errors.APIError as exc:
        reason = str(exc.explanation or exc).splitlines()[0]
        log(f"base image: cannot pull {ref} ({reason[:160]})")
        return False
    return True


def ensure_base(client: docker.DockerClient, log: Log = print) -> str:
    """A reference to a Debian base image the engine has, making one if it must."""
    for ref in (OFFICIAL, LOCAL):
        if _has(client, ref):
            return ref
    if _try_pull(client, OFFICIAL, log):
        return OFFICIAL
    log(f"base image: making {LOCAL} from Debian's packages with debootstrap instead")
    make_base(client, log)
    return LOCAL


def make_base(client: docker.DockerClient, log: Log = print) -> str:
    """debootstrap a minbase `SUITE`, import it as LOCAL; returns the image id."""
    if shutil.which("debootstrap") is None:
        raise BaseImageError("debootstrap is missing: install Debian's debootstrap package")
    work = config.cache_dir() / "docker"
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="base-", dir=work) as tmp_name:
        tmp = Path(tmp_name)
        root = tmp / "root"
        _debootstrap(root, log)
        _tidy(root)
        tarball = tmp / "base.tar"
        log("base image: packing the tree")
        proc = subprocess.run(
            [
                "tar",
                "--numeric-owner",
                "-C",
                str(root),
                "-cf",
                str(tarball),
                "--exclude=./dev/*",
                "--exclude=./proc/*",
                "--exclude=./sys/*",
                ".",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise BaseImageError(f"tar failed: {proc.stderr.strip()[-500:]}")
        log(f"base image: importing {tarball.stat().st_size // 2**20} MB as {LOCAL}")
        repo, tag = LOCAL.split(":")
        reply = client.api.import_image_from_file(
            str(tarball), repository=repo, tag=tag, changes=['CMD ["bash"]']
        )
    image_id = _imported_id(reply)
    log(f"base image: {LOCAL} ready in {time.monotonic() - started:.0f} s")
    return image_id


def _debootstrap(root: Path, log: Log) -> None:
    """Run debootstrap, showing the first line of each kind it prints (not every package)."""
    argv = ["debootstrap", "--variant=minbase", SUITE, str(root)]
    log(f"base image: {' '.join(argv[:3])} (about a minute)")
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    assert proc.stdout is not None
    tail: list[str] = []
    seen: set[str] = set()
    for line in proc.stdout:
        line = line.rstrip()
        tail = [*tail[-14:], line]
        m = re.match(r"I: (\w+)", line)
        if m and m.group(1) not in seen:
            seen.add(m.group(1))
            log(f"base image: {line[3:][:100]}")
    if proc.wait() != 0:
        raise BaseImageError("debootstrap failed:\n" + "\n".join(tail))


def _tidy(root: Path) -> None:
    """Debian's full apt sources (updates and security too), minus build leftovers."""
    listed = (root / "etc" / "apt" / "sources.list").read_text()
    m = re.search(r"^deb\s+(\S+)\s", listed, re.M)
    if m is None:
        raise BaseImageError(f"no mirror in debootstrap's sources.list: {listed!r}")
    mirror = m.group(1).rstrip("/")
    security = re.sub(r"/debian$", "/debian-security", mirror)
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    sources = (
        f"Types: deb\nURIs: {mirror}\nSuites: {SUITE} {SUITE}-updates\n"
        f"Components: main\nSigned-By: {keyring}\n\n"
        f"Types: deb\nURIs: {security}\nSuites: {SUITE}-security\n"
        f"Components: main\nSigned-By: {keyring}\n"
    )
    (root / "etc" / "apt" / "sources.list").unlink()
    (root / "etc" / "apt" / "sources.list.d" / "debian.sources").write_text(sources)
    for junk in _JUNK:
        shutil.rmtree(root / junk, ignore_errors=True)
        (root / junk).mkdir(parents=True, exist_ok=True)
    for name in ("resolv.conf", "hostname"):
        (root / "etc" / name).unlink(missing_ok=True)
    for cache in (root / "var" / "cache" / "apt").glob("*.bin"):
        cache.unlink()


def _imported_id(reply: object) -> str:
    """The image id in the engine's reply to an import (a JSON line or a dict)."""
    text = reply if isinstance(reply, str) else str(reply)
    m = re.search(r"sha256:[0-9a-f]{64}", text)
    if m is None:
        raise BaseImageError(f"the engine did not confirm the import: {text[:300]}")
    return m.group(0)
