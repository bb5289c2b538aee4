"""Every memo's key holds the code that computes its answer (runner/memo.py).

A memo declares the module that computes its answer and the modules whose source
its key holds. If the second list misses a module the first one imports, an edit
there would leave old answers in use: the test compares the list with the imports
(those inside functions too), as docs/architecture.md's test reads them.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from test_architecture import _graph, _module_name, _modules, _reachable

from runner import memo


def _declared() -> dict[str, memo.Memo]:
    """Every Memo a module of ours declares at its top level, by kind."""
    found: dict[str, memo.Memo] = {}
    for path in _modules():
        if "Memo(" not in path.read_text():
            continue
        module = importlib.import_module(_module_name(path))
        for value in vars(module).values():
            if isinstance(value, memo.Memo):
                assert found.get(value.kind, value) == value, f"two memos named {value.kind}"
                found[value.kind] = value
    return found


def test_the_memos_are_found() -> None:
    # The verdicts of stored captures at least: the test below must not pass by
    # finding none.
    assert "judged" in _declared()


@pytest.mark.parametrize("kind", sorted(_declared()))
def test_a_memo_key_holds_every_module_its_answer_can_run(kind: str) -> None:
    declared = _declared()[kind]
    reached = _reachable(_graph(), declared.computes)
    assert sorted(reached - set(declared.code)) == [], f"add them to the {kind} memo's code"
    assert memo.code_digest(declared.code)  # each names a module with a source file


def test_a_code_digest_changes_with_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "memoprobe"
    package.mkdir()
    source = package / "__init__.py"
    source.write_text("ANSWER = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = memo.code_digest(("memoprobe",))
    source.write_text("ANSWER = 2\n")
    memo.code_digest.cache_clear()
    assert memo.code_digest(("memoprobe",)) != before
