"""Answers kept on disk between builds, each filed under a key of everything that
shapes it.

A warm build asks the same questions as the last one (how a capture that did not
change is judged, what a page's blocks show, ...) and each process
would otherwise pay for them again. A memo is only as good as its key: the caller
names every input of the answer, the code that computes it among them
(`code_digest`), and a changed input is a new key, so the answer is computed
afresh. Nothing here decides anything; a missing, unreadable or foreign entry is
just a miss.

Each kind of answer is one `Memo`, declared beside the code that asks: its
folder, the module that computes the answer and the modules whose source the key
holds (that one and every module of ours it imports; tests/test_memo_keys.py
checks the list against the imports). Entries are small JSON files under the cache
(`config.cache_dir()/memo/<kind>/`); one that no build has used for UNUSED_FOR goes
when a new one of its kind is kept.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner import config, sources

UNUSED_FOR = 14 * 86400  # seconds: every edit of an input leaves an entry behind


def folder(kind: str) -> Path:
    return config.cache_dir() / "memo" / kind


def key(parts: Iterable[bytes | str]) -> str:
    """The key of an answer whose inputs are `parts` (in a fixed order)."""
    return sources.digest(parts)


@functools.cache
def code_digest(modules: tuple[str, ...]) -> str:
    """A hash of the named modules' source files, byte for byte: the code that computes
    an answer is one of its inputs. Read once per process: the code that runs is the
    code that was imported."""
    parts: list[bytes | str] = []
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise LookupError(f"no source file for module {name}")
        parts += [name, Path(spec.origin).read_bytes()]
    return key(parts)


@dataclass(frozen=True)
class Memo:
    """One kind of answer kept between builds."""

    kind: str  # its folder under the cache
    computes: str  # the module whose code makes the answer
    code: tuple[str, ...]  # `computes` and every module of ours it imports (tested)

    def key(self, parts: Iterable[bytes | str]) -> str:
        """The key of the answer to the question `parts`, this code answering."""
        return key([self.kind, code_digest(self.code), *parts])

    def get(self, at: str) -> Any | None:
        return get(self.kind, at)

    def put(self, at: str, value: Any) -> None:
        put(self.kind, at, value)


def get(kind: str, at: str) -> Any | None:
    """The answer kept under key `at`, or None."""
    path = folder(kind) / f"{at}.json"
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # in use: pruned only when no build has wanted it for long
    return value


def put(kind: str, at: str, value: Any) -> None:
    """Keep `value` (JSON) under key `at`. A cache that cannot be written only costs time."""
    where = folder(kind)
    with contextlib.suppress(OSError):
        where.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=where)
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(value, out)
            os.replace(tmp, where / f"{at}.json")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)  # only there when the write failed
        prune(where)


def prune(where: Path, now: float | None = None) -> None:
    """Remove the entries in `where` that no build has used for UNUSED_FOR."""
    cutoff = (time.time() if now is None else now) - UNUSED_FOR
    for path in where.glob("*.json"):
        with contextlib.suppress(OSError):  # another build's, gone already: fine
            if path.stat().st_mtime < cutoff:
                path.unlink()
