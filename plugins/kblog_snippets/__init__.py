"""Pelican plugin: a post's executed snippets shown as the sandbox captured them.

Settings:
    KBLOG_SNIPPETS_DIR  where frozen captures live (default: "snippets")
    KBLOG_KERNELS       kernels each post runs on, the first one shown (default: every
                        kernel runner/config.py names, in its order)
    KBLOG_EXECUTE       "auto" (run stale posts), "never" or "always"; the
                        environment variable of the same name wins
    KBLOG_REPOSITORY_URL  the address a repository file's path is appended to, to
                        link it (e.g. https://github.com/OWNER/kblog/blob/main): the
                        provenance line links the patch a built kernel was made
                        with; empty (the default): no link

Templates: the theme's kblog/block.html renders each executed block and
kblog/provenance.html the line that says where a page's captures were made.
"""

from __future__ import annotations

from .plugin import PLUGIN, SnippetsPlugin, register

__all__ = ["PLUGIN", "SnippetsPlugin", "register"]
