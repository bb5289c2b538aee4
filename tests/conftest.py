"""Options and fixtures shared by every test directory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# tests/runner/ has no __init__.py; with the project root missing from sys.path,
# `import runner` would quietly find that directory as a namespace package.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Tests pick their backend; a dockerd that tests/docker started must not change
# where the others run (their checks look for QEMU children of this process).
os.environ.setdefault("KBLOG_BACKEND", "local")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite expected golden files (tests/golden/) from what the code produces now",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True when the run was started with --update-golden."""
    return bool(request.config.getoption("--update-golden"))
