"""Each post's reproduction bundle, and the commands its page shows.

A bundle is a .tar.gz holding what reproduces the post without the rest of the
repository: its scenario, its published captures, the kmod/ sources (a kernel
patch among them), kernel/ (the config fragment of a kernel the post builds) and
the runner (which also builds the Docker image). Tar members are sorted and dated
0, so an unchanged post gives a byte-identical bundle.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import importlib.metadata
import io
import json
import os
import sys
import tarfile
import time
from pathlib import Path

from runner import config, freeze, memo, sources
from runner.scenario import Scenario

HERE = Path(__file__).resolve().parent
README = HERE / "bundle-README.txt"
BUNDLES = "bundles"


def commands(name: str, url: str) -> list[str]:
    """The shell commands that reproduce a post from its bundle, for the page."""
    sdk, rich = pins()
    # Without a SITEURL the link is site-relative: the page's download link serves then.
    fetch = [f"curl -LO {url}"] if url.startswith(("http://", "https://")) else []
    return [
        *fetch,
        f"tar xzf {name}.tar.gz && cd {name}",
        f"python3 -m venv .venv && .venv/bin/pip install docker=={sdk} rich=={rich}",
        ".venv/bin/python -m runner.reproduce",
    ]


@functools.cache
def pins() -> tuple[str, str]:
    """The versions of the Docker SDK and of rich (the progress display, runner/display.py)
    installed here, which a reader's venv installs too: looked up once per process."""
    return importlib.metadata.version("docker"), importlib.metadata.version("rich")


def _add_tree(tar: tarfile.TarFile, root: Path, arcname: str) -> None:
    for path in sources.files(root):
        rel = path.relative_to(root)
        _add_bytes(tar, f"{arcname}/{rel}", path.read_bytes(), path.stat().st_mode & 0o777)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


# Which cached gzip (by its tar's hash) a bundle's inputs make, kept between builds
# (runner/memo.py): a warm build would make every tar again only to find its gzip.
MADE = memo.Memo(
    "bundle",
    "kblog_snippets.bundle",
    (
        "kblog_snippets.bundle",
        "runner",
        "runner.config",
        "runner.freeze",
        "runner.kernels",
        "runner.kernels.debian",
        "runner.kernels.source",
        "runner.memo",
        "runner.scenario",
        "runner.sources",
    ),
)


def tree_key(root: Path) -> str:
    """What a bundle takes from the tree at `root`: each file's path, mode and bytes."""
    parts: list[bytes | str] = []
    for path in sources.files(root) if root.is_dir() else []:
        mode = path.stat().st_mode & 0o777
        parts += [str(path.relative_to(root)), oct(mode), path.read_bytes()]
    return memo.key(parts)


def make(
    name: str,
    scenario: Scenario,
    captures: str,
    kmod: Path,
    kernel_dir: Path,
    runner: Path,
    trees: dict[Path, str] | None = None,
    model: str = "",
) -> bytes:
    """The bundle's bytes; the same inputs always give the same bytes. `kernel_dir` is
    left out where it does not exist (a site whose posts build no kernel). `trees`
    keeps the trees' keys (tree_key) for the next bundle of the same build; `model`
    is the scenario's whole content as the post has it already (kblog.parse's
    Post.model), for the key."""
    trees = {} if trees is None else trees
    for root in (kmod, kernel_dir, runner):
        if root not in trees:
            trees[root] = tree_key(root)
    readme = README.read_bytes()
    model = model or json.dumps(scenario.to_json(), sort_keys=True)
    shape: list[bytes | str] = [
        name,
        readme,
        model,
        captures,
        *(trees[r] for r in (kmod, kernel_dir, runner)),
        sys.version,  # tarfile and gzip write the bytes: another Python may write others
    ]
    at = MADE.key(shape)
    made = MADE.get(at)
    if isinstance(made, str):
        with contextlib.suppress(OSError):  # pruned since: made again below
            return _cached(made)
    scenario_json = json.dumps(scenario.to_json(), indent=1) + "\n"
    tar = _tar(name, readme, scenario_json, captures, kmod, kernel_dir, runner)
    data = _compressed(tar)
    MADE.put(at, hashlib.sha256(tar).hexdigest())
    return data


def _tar(
    name: str,
    readme: bytes,
    scenario_json: str,
    captures: str,
    kmod: Path,
    kernel_dir: Path,
    runner: Path,
) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, f"{name}/README.txt", readme)
        _add_bytes(tar, f"{name}/scenario.json", scenario_json.encode())
        _add_bytes(tar, f"{name}/captures.json", captures.encode())
        _add_tree(tar, kmod, f"{name}/kmod")
        if kernel_dir.is_dir():
            _add_tree(tar, kernel_dir, f"{name}/{config.KERNEL_DIR.name}")
        _add_tree(tar, runner, f"{name}/runner")
    return raw.getvalue()


def _cached(digest: str) -> bytes:
    """The cached gzip of the tar whose hash is `digest`, marked as in use."""
    cached = config.cache_dir() / "bundles" / f"{digest}.tar.gz"
    data = cached.read_bytes()
    os.utime(cached)  # in use: pruned only when no build has wanted it for long
    return data


def _compressed(tar: bytes) -> bytes:
    """The gzip of `tar`, kept in the cache by the tar's hash: compressing is most of a
    bundle's cost, and a tar is made again whenever MADE has no entry for its inputs
    (tar and gzip are both deterministic here, so a cached file is exactly what
    compressing would give)."""
    cache = config.cache_dir() / "bundles"
    digest = hashlib.sha256(tar).hexdigest()
    with contextlib.suppress(OSError):  # none yet, or unreadable: make it again
        return _cached(digest)
    cached = cache / f"{digest}.tar.gz"
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
