"""Which files of a source tree count: one list for hashing, copying and bundling.

Build products, editor droppings and caches are left out everywhere, so a `make`
run in kmod/ on the host, or a swap file, neither re-runs every post nor reaches
the guest or a reader's bundle.
"""

from __future__ import annotations

import fnmatch
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
