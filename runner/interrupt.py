"""Ctrl-C: an orderly stop of every run of this process.

The terminal sends SIGINT to its foreground process group. The children a run owns
(QEMU, the build sandbox's shell) are started outside that group, so that they do
not die of it before the runner decides: QEMU dying first was reported as a lost
guest. Python turns SIGINT into KeyboardInterrupt in the main thread, which unwinds
a run there and tears it down. Runs in other threads (a site build's parallel posts)
never see it: `stopping()` stops them (their guests and build shells killed, no new
guest started) so that they unwind too, with Interrupted.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import threading
from collections.abc import Callable, Iterator

Stop = Callable[[], None]


class Interrupted(KeyboardInterrupt):
    """This process is being interrupted: a run in another thread stops as well."""


_lock = threading.Lock()
_stops: dict[int, Stop] = {}
_keys = itertools.count()
_stopping = False


_sigint = False  # a SIGINT came (catch_sigint's handler ran)


def catch_sigint() -> None:
    """Make SIGINT raise KeyboardInterrupt, even where it was inherited as ignored (a
    script's background job): Python then installs no handler, while QEMU installs
    its own, so a guest died of Ctrl-C and the runner went on. The handler also
    leaves a mark that check() sees: a KeyboardInterrupt raised where Python only
    reports it ("Exception ignored in", e.g. in logging's at-fork handler while a
    subprocess starts) was lost, and the run went on to exit 0. For the main thread
    of a command-line entry point only."""
    signal.signal(signal.SIGINT, _on_sigint)


def _on_sigint(signum: int, frame: object) -> None:
    global _sigint
    _sigint = True
    raise KeyboardInterrupt


def check() -> None:
    """Raise Interrupted once this process is being interrupted."""
    if _stopping or _sigint:
        raise Interrupted


@contextlib.contextmanager
def stops(stop: Stop) -> Iterator[None]:
    """While the body runs, an interrupt calls `stop` (from another thread: it must only
    signal, quickly); Interrupted at once if the interrupt came already."""
    with _lock:
        check()
        key = next(_keys)
        _stops[key] = stop
    try:
        yield
    finally:
        with _lock:
            _stops.pop(key, None)


@contextlib.contextmanager
def stopping() -> Iterator[None]:
    """Stop every run under way and let none start while the body waits for them to
    unwind; afterwards runs may start again (a long-lived process builds again)."""
    global _stopping, _sigint
    with _lock:
        _stopping = True
        pending = list(_stops.values())
    try:
        for stop in pending:
            with contextlib.suppress(OSError):  # already gone
                stop()
        yield
    finally:
        with _lock:
            _stopping = _sigint = False
