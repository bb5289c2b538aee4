"""The sandbox runner: executes a post's snippets in a fresh QEMU guest."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The sources that shape what a capture looks like: the guest side, how steps are
# typed and read, matched, and how the kernel log is parsed, and QEMU's argv.
# Host-only plumbing (backends, docker, reproduce, CLI) is left out: editing it
# does not make every post stale.
CAPTURE_SOURCES = (
    "agent",
    "guest",
    "config.py",
    "execute.py",
    "expect.py",
    "kernel_log.py",
    "scenario.py",
    "terminal.py",
    "vm.py",
)


def runner_digest() -> str:
    """A hash of CAPTURE_SOURCES: part of every freeze key."""
    from runner import sources

    h = hashlib.sha256()
    for name in CAPTURE_SOURCES:
        path = HERE / name
        for file in sources.files(path) if path.is_dir() else [path]:
            h.update(str(file.relative_to(HERE)).encode() + b"\0" + _code_of(file) + b"\0")
    return h.hexdigest()[:16]


def _code_of(file: Path) -> bytes:
    """What a file does: for Python, its syntax tree without docstrings, comments or
    annotations, so rewording or retyping the runner does not re-run every post."""
    if file.suffix != ".py":
        return file.read_bytes()
    tree = ast.parse(file.read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body[0] = ast.Pass()
        if isinstance(node, ast.AnnAssign):
            node.annotation = ast.Constant(None)
        if isinstance(node, ast.arg):
            node.annotation = None
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            node.returns = None
    return ast.dump(tree).encode()
