"""Golden kernel logs: every console log under tests/golden/kernel_log/ and the
events runner.kernel_log finds in it, in the manner of syzkaller's pkg/report tests.

NAME.log is a console log (captured from a guest, unless its first line says it
was reconstructed); NAME.events.json is the list of {kind, line} expected from it.
`pytest --update-golden` rewrites the .events.json files; review the diff.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from runner import kernel_log

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "kernel_log"
LOGS = sorted(GOLDEN.glob("*.log"))


def _expected_path(log: Path) -> Path:
    return log.with_suffix(".events.json")


def _found(log: Path) -> list[dict[str, str]]:
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return [asdict(e) for e in kernel_log.events(lines)]


def test_there_are_golden_logs() -> None:
    assert len(LOGS) >= 5, f"golden logs missing from {GOLDEN}"


@pytest.mark.parametrize("log", LOGS, ids=[p.stem for p in LOGS])
def test_events_match_golden(log: Path, update_golden: bool) -> None:
    found = _found(log)
    expected_path = _expected_path(log)
    if update_golden:
        expected_path.write_text(json.dumps(found, indent=1) + "\n")
        return
    assert expected_path.exists(), (
        f"{expected_path.name} is missing: run pytest --update-golden and review it"
    )
    expected = json.loads(expected_path.read_text())
    assert found == expected


def test_every_expectation_has_its_log() -> None:
    orphans = [
        p.name
        for p in GOLDEN.glob("*.events.json")
        if not p.with_name(p.name.removesuffix(".events.json") + ".log").exists()
    ]
    assert orphans == []


# What a reader must be told about each golden log, independent of the exact lines:
# a regression in SIGNATURES shows here with a message, not only as a JSON diff.
KINDS = {
    "ep2-6.1-noref-read": ["BUG", "Oops", "BUG", "Oops", "recursive-fault"],
    "ep2-6.12-noref-read": ["BUG", "Oops", "BUG", "Oops", "recursive-fault"],
    "bug-6.12-bug-on-load": ["BUG", "Oops"],
    "warn-6.1-warn-on-load": ["WARNING"],
    "bug-6.1-bug-on-load": ["BUG", "Oops"],
    "panic-6.1-panic-on-load": ["panic"],
    "panic-6.1-sysrq-c": ["panic"],
    "oops-4.4-paging-request": ["BUG", "Oops", "panic"],
}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_event_kinds(name: str) -> None:
    kinds = [e["kind"] for e in _found(GOLDEN / f"{name}.log")]
    assert kinds == KINDS[name]


def test_panic_trailer_is_not_a_second_panic() -> None:
    tail = [
        "[  241.390297] Kernel panic - not syncing: Fatal exception",
        "[  241.390989] ---[ end Kernel panic - not syncing: Fatal exception ]---",
    ]
    assert [e.kind for e in kernel_log.events(tail)] == ["panic"]


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        # 6.12 prefixes every oops header with "Oops: ".
        ("Oops: Oops: 0000 [#1] PREEMPT SMP NOPTI", "Oops"),
        ("Oops: invalid opcode: 0000 [#1] PREEMPT SMP NOPTI", "Oops"),
        ("divide error: 0000 [#1] PREEMPT SMP NOPTI", "Oops"),
        ("BUG: kernel NULL pointer dereference, address: 0000000000000008", "BUG"),
        ("BUG: unable to handle kernel NULL pointer dereference at 0000000000000008", "BUG"),
        ("watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [insmod:110]", "soft-lockup"),
        (
            "general protection fault, probably for non-canonical address "
            "0xdead000000000100: 0000 [#1] PREEMPT SMP NOPTI",
            "general-protection",
        ),
        ("INFO: task python3:121 blocked for more than 120 seconds.", "hung-task"),
    ],
)
def test_single_lines(line: str, kind: str) -> None:
    assert [e.kind for e in kernel_log.events([f"[   12.345678] {line}"])] == [kind]


@pytest.mark.parametrize(
    "line",
    [
        "---[ end trace 0000000000000000 ]---",
        "------------[ cut here ]------------",
        "chardev: got major 245, create the node with: mknod /dev/chardev c 245 0",
        "note: python3[121] exited with irqs disabled",
        "Kernel Offset: 0x32a00000 from 0xffffffff81000000",
    ],
)
def test_quiet_lines(line: str) -> None:
    assert kernel_log.events([line]) == []
