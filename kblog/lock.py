"""One writer of a checkout at a time: an flock on build/.lock beside content/.

A site build (`invoke build`, `make html`, publish) and `invoke verify --update`
write snippets/ and swap output/ in; two at once could interleave their captures or
swap one site over the other's. Each holds the lock exclusively for its whole run;
a verification that keeps nothing holds it shared, so it judges one whole state of
snippets/ and several can run side by side. Whoever comes second waits, saying once
for whom; the kernel drops the lock when its holder exits, however it ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from runner.host import pid_alive

LOCK = Path("build") / ".lock"  # build/ is git-ignored; `invoke clean` may remove it

# The lock files this process holds: a nested take (publish's build inside a caller
# that holds it) must not wait on itself, as a second flock of one file would.
_held: set[Path] = set()


class LockError(RuntimeError):
    """The lock file could not be opened: names it and why."""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def holder(path: Path) -> str:
    """Who holds the lock, as its holder recorded it: "pid 123 (a site build)"."""
    try:
        pid_text, _, what = path.read_text().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return "another build or verify"
    if not pid_alive(pid):  # it exited between our try and this read
        return "another build or verify"
    return f"pid {pid} ({what.strip() or 'a build or verify'})"


@contextlib.contextmanager
def checkout_lock(
    root: Path, what: str, *, shared: bool = False, say: Callable[[str], None] = _stderr
) -> Iterator[Path]:
    """Hold `root`/build/.lock for the block: exclusively, or `shared` with other
    readers. `what` is how a waiter sees this holder; `say` tells once of a wait."""
    path = (root / LOCK).resolve()
    if path in _held:
        yield path
        return
    told = False
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise LockError(f"{path}: cannot open the build lock: {exc.strerror}") from None
        try:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                if not told:
                    say(f"waiting for {holder(path)} to finish: it holds {path}")
                    told = True
                fcntl.flock(fd, mode)
            try:
                current = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if not current:
                continue  # removed while we waited (invoke clean): take the new one
            # Only what a waiter is told; a full disk must not fail the build here.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()} {what}\n".encode(), 0)
            _held.add(path)
            try:
                yield path
            finally:
                _held.discard(path)
            return
        finally:
            os.close(fd)
