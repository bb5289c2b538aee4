"""Which files of a source tree count (one list for hashing, copying and bundling),
and the hashes of them that name cached artifacts and freeze captures.

Build products, editor droppings and caches are left out everywhere, so a `make`
run in kmod/ on the host, or a swap file, neither re-runs every post nor reaches
the guest or a reader's bundle.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable
from pathlib import Path

IGNORE = (
    # kbuild's products
    "*.o",
    "*.ko",
    "*.mod",
    "*.mod.c",
    "modules.order",
    "Module.symvers",
    # hidden files (kbuild's .*.cmd, editors' swap files), backups, Python caches
    ".*",
    "*~",
    "__pycache__",
    "*.pyc",
)


def ignored(name: str) -> bool:
    """Whether a file or directory called `name` is left out."""
    return any(fnmatch.fnmatch(name, pattern) for pattern in IGNORE)


def files(root: Path) -> list[Path]:
    """The files under `root` that count, sorted, skipping ignored directories too."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(ignored(part) for part in p.relative_to(root).parts)
    )


def digest(parts: Iterable[bytes | str]) -> str:
    """A short hash of `parts`, each kept apart from the next."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def tree_digest(root: Path, only: Iterable[str] | None = None) -> str:
    """A hash of the relative path and content of every file under `root` that counts,
    or only of the files and directories named in `only`."""
    if only is None:
        paths = files(root)
    else:
        paths = []
        for name in only:
            path = root / name
            paths += files(path) if path.is_dir() else [path]
    parts: list[bytes | str] = []
    for path in paths:
        parts += [str(path.relative_to(root)), path.read_bytes()]
    return digest(parts)
