"""The Docker side before a run: the engine, the Debian base, and the sandbox image.

The image (runner/Dockerfile) holds QEMU, the build tools, the guest kernels'
headers and the guest artifacts, built in advance. It is built FROM Debian's
`debian:<suite>-slim` where the engine has it or can pull it; where no registry
answers, the same suite is made from Debian's packages with debootstrap
(minbase) and imported as `kblog/debian-base:<suite>`, so Docker never needs a
registry, only Debian's package archive.

The image is labelled with a hash of everything it is built from; a missing or
outdated image is rebuilt before a run, with progress.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import config, host_packages, sources
from runner.events import Log
from runner.guest import image as guest_image

if TYPE_CHECKING:
    import docker

HERE = Path(__file__).resolve().parent.parent  # runner/: the build context
IMAGE = "kblog/runner"
TAG = f"{IMAGE}:latest"
INPUTS_LABEL = "org.kblog.inputs"
# Where a container keeps kernels built from source (config.kernel_cache_dir()): the
# image makes it, owned by its user, and runs that build the kernel mount a named
# volume on it (runner/backends/docker.py), which takes that owner when new.
KERNEL_CACHE = "/opt/kblog/kernel-cache"
CONNECT_TIMEOUT = 10
# Host-side only: never run in the container, so editing them rebuilds nothing.
HOST_ONLY = (
    "backends/docker.py",
    "backends/docker_image.py",
    "backends/container-seccomp.json",  # given to each container, not built in
    # the image takes its packages as a build arg, so only that list counts
    "host-packages.txt",
    "host_packages.py",
    "install-host-packages.sh",
)


class DockerBackendError(RuntimeError):
    """The docker backend cannot run, or the run in the container failed."""


class DockerUnavailable(DockerBackendError):
    """No engine answers (or we may not talk to it); the message is one line."""


# --- the engine ---------------------------------------------------------------


def _where() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def explain(exc: BaseException) -> str:
    """One line saying why the engine cannot be used, and what to do about it."""
    chain: list[str] = []
    cur: BaseException | None = exc
    while cur is not None and len(chain) < 10:
        chain.append(f"{type(cur).__name__}: {cur}")
        cur = cur.__cause__ or cur.__context__
    text = " ".join(chain)
    where = _where()
    if "PermissionError" in text or "Permission denied" in text:
        return (
            f"permission denied on the Docker socket ({where}): add your user to the "
            "docker group and log in again, or run as root"
        )
    if any(s in text for s in ("FileNotFoundError", "No such file", "Connection refused")):
        return (
            f"no Docker engine answers at {where}: start it (`sudo dockerd &` or "
            "`sudo systemctl start docker`) or set DOCKER_HOST"
        )
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"the Docker engine at {where} cannot be used: {first[:200]}"


def connect() -> docker.DockerClient:
    """A client whose engine has answered a ping; DockerUnavailable otherwise."""
    try:
        import docker
    except ImportError:
        raise DockerUnavailable(
            "the docker Python package is missing: pip install -e . in the venv"
        ) from None
    try:
        client = docker.from_env(timeout=CONNECT_TIMEOUT)
        client.ping()
    except Exception as exc:  # the SDK wraps socket errors in several ways
        raise DockerUnavailable(explain(exc)) from exc
    return client


def docker_available() -> tuple[bool, str]:
    """(True, what answers) or (False, one line saying why not and what to do)."""
    try:
        client = connect()
    except DockerUnavailable as exc:
        return False, str(exc)
    try:
        version = client.version().get("Version", "?")
    finally:
        client.close()
    return True, f"Docker engine {version} answers at {_where()}"


# --- the base image -----------------------------------------------------------

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


# --- the image ----------------------------------------------------------------


def _build_args(base: str) -> dict[str, str]:
    return {
        "BASE": base,
        "GUEST_PACKAGES": " ".join(config.GUEST_PACKAGES),
        "KERNEL_CACHE": KERNEL_CACHE,
        "KERNEL_RELEASES": " ".join(k.release for k in config.KERNELS.values()),
        "RUNNER_PACKAGES": " ".join(host_packages.packages("image")),
    }


def _context_files() -> list[Path]:
    """What the build context holds: runner/, less caches and the host-only modules."""
    return [p for p in sources.files(HERE) if str(p.relative_to(HERE)) not in HOST_ONLY]


def inputs_digest(base_id: str) -> str:
    """A hash of what the image is built from: the base, the context (Dockerfile too), args."""
    parts: list[bytes | str] = [base_id]
    parts += [f"{k}={v}" for k, v in sorted(_build_args("").items())]
    for path in _context_files():
        parts += [str(path.relative_to(HERE)), path.read_bytes()]
    return sources.digest(parts)


# Where the context carries the guest's pinned wheels (the Dockerfile's COPY).
WHEELS = "wheels"


def _context(log: Log) -> io.BytesIO:
    """The build context as a tar: runner/ (no build caches, no venv) and the guest's
    pinned wheels. The host fetches those (guest_image.fetch_wheel, its cache and its
    trust store): a build step in the container may sit behind a proxy whose CA only
    the host trusts. Their pins are in config.py, so inputs_digest covers them."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in _context_files():
            tar.add(path, arcname=str(path.relative_to(HERE)), recursive=False)
        for wheel in config.GUEST_WHEELS:
            tar.add(guest_image.fetch_wheel(wheel, log), arcname=f"{WHEELS}/{wheel.filename}")
    buf.seek(0)
    return buf


def _needs_build(
    client: docker.DockerClient, base: str, force: bool
) -> tuple[str, str | None, str | None]:
    """(the label the image should have, its current id, why it must be built or None)."""
    import docker.errors

    wanted = inputs_digest(client.images.get(base).id)
    try:
        image = client.images.get(TAG)
    except docker.errors.ImageNotFound:
        return wanted, None, "it does not exist yet"
    if force:
        return wanted, image.id, "a rebuild was asked for"
    if image.labels.get(INPUTS_LABEL) != wanted:
        return wanted, image.id, "its inputs changed (base, Dockerfile, runner/, kernels)"
    return wanted, image.id, None


def ensure_image(
    client: docker.DockerClient | None = None,
    log: Log = print,
    force: bool = False,
    verbose: bool = False,
) -> tuple[str, bool]:
    """(the image tag, whether it was built now): builds it if missing or outdated.

    Parallel posts all ask; one thread builds while the others wait and reuse it.
    """
    with _IMAGE_LOCK:
        return _ensure_image(client, log, force, verbose)


_IMAGE_LOCK = threading.Lock()


def _ensure_image(
    client: docker.DockerClient | None, log: Log, force: bool, verbose: bool
) -> tuple[str, bool]:
    import docker.errors
    import requests.exceptions

    client = client or connect()
    base = ensure_base(client, log)
    wanted, old_id, why = _needs_build(client, base, force)
    if why is None:
        return TAG, False
    log(f"docker image {TAG} needs building: {why}; building it on {base} (a few minutes)")
    build_image(client, base, wanted, log, verbose)
    new_id = client.images.get(TAG).id
    if old_id and old_id != new_id:
        # Frees what the new image does not share. Only a clean-up: a refusal, or an
        # engine too busy to answer within the client's timeout (it goes on deleting),
        # must not fail the build of an image that is ready.
        with contextlib.suppress(docker.errors.APIError, requests.exceptions.Timeout):
            client.images.remove(old_id)
    return TAG, True


def build_image(
    client: docker.DockerClient, base: str, digest: str, log: Log = print, verbose: bool = False
) -> None:
    """Build TAG from runner/Dockerfile on `base`, relaying the build's progress."""
    started = time.monotonic()
    tail: list[str] = []
    stream: Iterator[dict[str, Any]] = client.api.build(
        fileobj=_context(log),
        custom_context=True,
        dockerfile="Dockerfile",
        tag=TAG,
        buildargs=_build_args(base),
        labels={INPUTS_LABEL: digest},
        rm=True,
        forcerm=True,
        pull=False,
        decode=True,
    )
    for chunk in stream:
        if "error" in chunk:
            detail = "\n".join(tail[-15:])
            raise DockerBackendError(f"building {TAG} failed: {chunk['error'].strip()}\n{detail}")
        for line in str(chunk.get("stream", "")).splitlines():
            line = line.rstrip()
            if not line.strip():
                continue
            tail = [*tail[-40:], line]
            if verbose or line.startswith(("Step ", "kblog: ")):
                elapsed = time.monotonic() - started
                log(f"  [{elapsed:4.0f} s] {line[:150]}")
    log(f"docker image {TAG} built in {time.monotonic() - started:.0f} s")
