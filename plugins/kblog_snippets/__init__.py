"""Pelican plugin: run a post's tagged snippets in the sandbox, show what happened.

Settings:
    KBLOG_SNIPPETS_DIR  where frozen captures live (default: "snippets")
    KBLOG_KERNELS       kernels each post runs on, the first one shown (default: the
                        runner's default kernel)
    KBLOG_EXECUTE       "auto" (run stale posts), "never" or "always"; the
                        environment variable of the same name wins
    KBLOG_CAPTURES      a Captures object, when the caller manages the build (tasks.py)
"""

from __future__ import annotations

from .plugin import register

__all__ = ["register"]
