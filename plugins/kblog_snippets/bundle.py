"""Each post's reproduction bundle, and the commands its page shows.

A bundle is a .tar.gz holding what reproduces the post without the rest of the
repository: its scenario, its published captures, the kmod/ sources (a kernel
patch among them), kernel/ (the config fragment of a kernel the post builds) and
the runner (which also builds the Docker image). Tar members are sorted and dated
0, so an unchanged post gives a byte-identical bundle.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.metadata
import io
import json
import os
import tarfile
import time
from pathlib import Path

from runner import config, freeze, sources
from runner.scenario import Scenario

HERE = Path(__file__).resolve().parent
README = HERE / "bundle-README.txt"
BUNDLES = "bundles"


def commands(name: str, url: str) -> list[str]:
    """The shell commands that reproduce a post from its bundle, for the page."""
    sdk = importlib.metadata.version("docker")
    rich = importlib.metadata.version("rich")  # the progress display (runner/display.py)
    # Without a SITEURL the link is site-relative: the page's download link serves then.
    fetch = [f"curl -LO {url}"] if url.startswith(("http://", "https://")) else []
    return [
        *fetch,
        f"tar xzf {name}.tar.gz && cd {name}",
        f"python3 -m venv .venv && .venv/bin/pip install docker=={sdk} rich=={rich}",
        ".venv/bin/python -m runner.reproduce",
    ]


def _add_tree(tar: tarfile.TarFile, root: Path, arcname: str) -> None:
    for path in sources.files(root):
        rel = path.relative_to(root)
        _add_bytes(tar, f"{arcname}/{rel}", path.read_bytes(), path.stat().st_mode & 0o777)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def make(
    name: str, scenario: Scenario, captures: str, kmod: Path, kernel_dir: Path, runner: Path
) -> bytes:
    """The bundle's bytes; the same inputs always give the same bytes. `kernel_dir` is
    left out where it does not exist (a site whose posts build no kernel)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, f"{name}/README.txt", README.read_bytes())
        scenario_json = json.dumps(scenario.to_json(), indent=1) + "\n"
        _add_bytes(tar, f"{name}/scenario.json", scenario_json.encode())
        _add_bytes(tar, f"{name}/captures.json", captures.encode())
        _add_tree(tar, kmod, f"{name}/kmod")
        if kernel_dir.is_dir():
            _add_tree(tar, kernel_dir, f"{name}/{config.KERNEL_DIR.name}")
        _add_tree(tar, runner, f"{name}/runner")
    return _compressed(raw.getvalue())


def _compressed(tar: bytes) -> bytes:
    """The gzip of `tar`, kept in the cache by the tar's hash: compressing is most of a
    bundle's cost, and a warm build makes the same tar again (tar and gzip are both
    deterministic here, so a cached file is exactly what compressing would give)."""
    cache = config.cache_dir() / "bundles"
    cached = cache / f"{hashlib.sha256(tar).hexdigest()}.tar.gz"
    with contextlib.suppress(OSError):  # none yet, or unreadable: make it again
        data = cached.read_bytes()
        os.utime(cached)  # in use: pruned only when no build has wanted it for long
        return data
    data = gzip.compress(tar, mtime=0)
    with contextlib.suppress(OSError):  # a cache we cannot write only costs time
        freeze.write_atomic_bytes(cached, data)
        prune(cache)
    return data


UNUSED_FOR = 14 * 86400  # seconds: every change to a post or the runner leaves one behind


def prune(cache: Path, now: float | None = None) -> None:
    """Remove the cached bundles no build has used for UNUSED_FOR (a new one is
    made for each change of a post, its captures, kmod/ or the runner)."""
    cutoff = (time.time() if now is None else now) - UNUSED_FOR
    for path in cache.glob("*.tar.gz"):
        with contextlib.suppress(OSError):  # another build's, gone already: fine
            if path.stat().st_mtime < cutoff:
                path.unlink()
