"""The sandbox runner: executes a post's snippets in a fresh QEMU guest.

Bump RUNNER_VERSION whenever a change alters what a capture looks like; it is
part of every freeze key, so stale captures are re-run.
"""

RUNNER_VERSION = "1"
