"""The GitHub workflows pass zizmor's audits, offline, with no finding of medium
severity or higher.

zizmor (pinned in pyproject.toml's test extras) reads the workflows as they are in
the tree: unpinned actions, credentials a checkout leaves behind, permissions
nobody narrowed. Its JSON output is parsed, not its text. Ignore comments and
config files are not honoured: a finding has to be fixed here, not silenced.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
FAILING = {"medium", "high"}
KNOWN = {"unknown", "informational", "low", *FAILING}


def _zizmor() -> str:
    """The venv's zizmor, which pyproject.toml pins; never one found elsewhere on PATH
    (it is a Python package, not a Debian one: tests/test_host_packages.py does not
    look for it)."""
    path = Path(sys.executable).parent / "zizmor"
    assert path.is_file(), f"zizmor is missing beside {sys.executable}: pip install -e '.[test]'"
    return str(path)


def _audit(*paths: Path) -> list[dict[str, Any]]:
    """zizmor's findings on `paths`, as its JSON gives them."""
    proc = subprocess.run(
        [
            _zizmor(),
            "--offline",  # no GitHub API: CI and laptops alike, and no token
            "--format=json",
            "--no-exit-codes",  # findings are judged below; a non-zero exit is a failure to run
            "--no-ignores",
            "--no-config",
            "--strict-collection",  # a workflow it cannot parse fails, rather than passing unread
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"zizmor failed ({proc.returncode}):\n{proc.stderr[-2000:]}"
    findings = json.loads(proc.stdout)
    assert isinstance(findings, list), proc.stdout[:500]
    return findings


def _severity(finding: dict[str, Any]) -> str:
    severity = str(finding["determinations"]["severity"]).lower()
    assert severity in KNOWN, f"zizmor gave a severity this test does not know: {severity}"
    return severity


def _where(finding: dict[str, Any]) -> str:
    for location in finding["locations"]:
        if location["symbolic"]["kind"] == "Primary":
            path = location["symbolic"]["key"]["Local"]["verbatim_path"]
            row = location["concrete"]["location"]["start_point"]["row"] + 1
            return f"{Path(path).name}:{row}"
    return "?"


def test_there_are_workflows_to_audit() -> None:
    assert WORKFLOWS, "no .github/workflows/*.yml: the audit below would check nothing"


def test_workflows_have_no_finding_of_medium_severity_or_higher() -> None:
    bad = [f for f in _audit(*WORKFLOWS) if _severity(f) in FAILING]
    listed = "\n".join(
        f"  {_where(f)}: {f['ident']} ({_severity(f)}): {f['desc']} ({f['url']})" for f in bad
    )
    assert bad == [], f"{len(bad)} zizmor finding(s) of medium severity or higher:\n{listed}"


def test_the_audit_sees_a_known_bad_workflow(tmp_path: Path) -> None:
    """The same pipeline flags an unpinned action: a test that cannot fail checks nothing."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\n"
        "jobs:\n"
        "  a:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
    )
    idents = {f["ident"] for f in _audit(bad) if _severity(f) in FAILING}
    assert "unpinned-uses" in idents, idents


def test_the_pinned_zizmor_runs() -> None:
    """The audit's verdicts change between releases: the venv's must be the pinned one."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["test"]
    pins = [e.split("==", 1)[1].split()[0] for e in extras if e.startswith("zizmor==")]
    assert len(pins) == 1, f"pyproject.toml's test extras pin no exact zizmor: {extras}"
    out = subprocess.run([_zizmor(), "--version"], capture_output=True, text=True).stdout
    assert out.split() == ["zizmor", pins[0]], f"{out.strip()!r}, but pyproject pins {pins[0]}"
