"""The sandbox runner: executes a post's snippets in a fresh QEMU guest."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

# The sources that shape what a capture looks like: the guest side and how it is
# built and saved, how steps are typed and read, matched, the build sandbox, how
# the kernel log is parsed, and QEMU's argv.
# Host-only plumbing (backends, docker, reproduce, CLI) is left out: editing it
# does not make every post stale.
CAPTURE_SOURCES = (
    "guest",  # the machine: QEMU's argv, the image, the agent, saved guests
    "config.py",
    "debugger.py",  # what a gdb step shows and how it waits
    "execute.py",
    "guests.py",
    "judge/expect.py",  # how output is matched: its captures are typed into later steps
    # The family table: a run stops at an event that ends the guest, and proves a
    # hang by one; the judge re-reads stored logs by it too, but the run needs it.
    "judge/kernel_log.py",
    "kernels/build.py",
    "sandbox.py",
    "sandbox-uname",
    "scenario.py",
    "terminal.py",
)


def runner_digest() -> str:
    """A hash of CAPTURE_SOURCES, byte for byte: part of every freeze key.

    Bytes, not syntax trees: Python's ast and tokenize output change between
    versions, and a reader's newer Python must not make every capture stale.
    """
    from runner import sources

    return sources.tree_digest(HERE, CAPTURE_SOURCES)
