"""The runner's part of the freeze key follows what its code does, not how it reads."""

from __future__ import annotations

from pathlib import Path

from runner import _code_of

BASE = '''"""Module doc."""


def step(line: str, timeout: float = 60.0) -> str:
    """Type a line."""
    prompt: str = "$ "  # the shell's
    return prompt + line
'''


def code(tmp_path: Path, text: str) -> bytes:
    path = tmp_path / "m.py"
    path.write_text(text)
    return _code_of(path)


def test_docs_comments_and_types_do_not_count(tmp_path: Path) -> None:
    reworded = (
        BASE.replace("Module doc.", "Another doc.")
        .replace("# the shell's", "# bash's prompt")
        .replace("line: str", "line")
        .replace("-> str", "")
        .replace('"""Type a line."""', '"""Types one line, as a person would."""')
    )
    assert code(tmp_path, reworded) == code(tmp_path, BASE)


def test_behaviour_counts(tmp_path: Path) -> None:
    assert code(tmp_path, BASE.replace('"$ "', '"# "')) != code(tmp_path, BASE)
    assert code(tmp_path, BASE.replace("60.0", "30.0")) != code(tmp_path, BASE)
