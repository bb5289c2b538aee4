"""The one exception this plugin raises: a problem in a source file, with its line."""

from __future__ import annotations

import os
from pathlib import Path


class ContentError(Exception):
    """A content file the site must not be built from.

    ``path`` is the source file, ``line`` the 1-based line the problem is on.
    ``str()`` gives ``path:line: message``, the form compilers and editors understand.
    """

    def __init__(self, path: str | os.PathLike[str], line: int, message: str) -> None:
        self.path = Path(path)
        self.line = line
        self.message = message
        super().__init__(f"{_display(self.path)}:{line}: {message}")


def _display(path: Path) -> str:
    """Show a path relative to the working directory when it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
