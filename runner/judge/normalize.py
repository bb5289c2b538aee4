"""Volatile values (timestamps, addresses, PIDs, durations) blanked for comparisons."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

_RULES = [
    (re.compile(r"^\[\s*\d+\.\d+\]"), "[T]"),  # printk timestamps
    # Page-table entries, whatever their digits (9214067 has no letter in it).
    (re.compile(r"\b(PGD|P4D|PUD|PMD|PTE) [0-9a-f]+\b"), r"\1 ADDR"),
    (re.compile(r"\b(0x)?[0-9a-f]{8,16}\b"), "ADDR"),  # kernel addresses, hashes
    # shorter hex values with a letter and a digit: page-table entries (PGD e414067)
    (re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{5,7}\b"), "ADDR"),
    (re.compile(r"\+0x[0-9a-f]+/0x[0-9a-f]+"), "+OFF"),  # symbol offsets
    (re.compile(r"\b\d+\.\d+\b"), "N.N"),  # uptimes, load, durations
    # A PID named as one, however small: a young guest's kernel threads start when
    # their work comes, so the next PID a post's program gets varies by one or two.
    (re.compile(r"(?i)\b(pid[ =:]\s*)\d+"), r"\1N"),
    # PIDs, sizes, majors; one- and two-digit numbers (counters) are kept.
    (re.compile(r"\b\d{3,}\b"), "N"),
]


# kbuild's progress lines ("  CC      kernel/sys.o", "  BUILD   arch/x86/boot/bzImage"):
# with kept objects they list what this run had to redo, which depends on the runs
# before it. In the build environment they are left out of drift.
KBUILD_PROGRESS = re.compile(r"^  [A-Z][A-Z0-9_]{1,7}( \[M\])? +\S")


def normalize(line: str) -> str:
    for pattern, repl in _RULES:
        line = pattern.sub(repl, line)
    return line.rstrip()


def normalize_lines(lines: list[str]) -> list[str]:
    return [normalize(line) for line in lines]


def _lines(output: str | list[str]) -> list[str]:
    return output if isinstance(output, list) else output.split("\n")


def kernel_renames(published: Mapping[str, Any], now: Mapping[str, Any]) -> dict[str, str]:
    """What a run on another kernel ABI calls the published capture's kernel release and
    Debian version (from the two provenances): those differ by design, not as drift."""
    return {
        str(published[name]): str(now[name])
        for name in ("kernel", "kernel_package")
        if published.get(name) and now.get(name) and published[name] != now[name]
    }


def _rename(line: str, renames: Mapping[str, str]) -> str:
    for old in sorted(renames, key=len, reverse=True):
        line = re.sub(rf"(?<![\w.]){re.escape(old)}(?![\w])", renames[old], line)
    return line


def drift(
    published: list[dict[str, Any]],
    now: list[dict[str, Any]],
    renames: Mapping[str, str] | None = None,
) -> str:
    """How two captures' outputs differ once volatile values are blanked ("" if not).

    Steps are dicts as stored in snippets/ (output as a string or a list of lines);
    `renames` are applied to the published output first (see kernel_renames).
    """
    lines: list[str] = []
    if len(published) != len(now):
        lines.append(f"{len(published)} steps published, {len(now)} now")
    for old, new in zip(published, now, strict=False):
        before, after = (
            normalize_lines([_rename(line, renames or {}) for line in _lines(old["output"])]),
            normalize_lines(_lines(new["output"])),
        )
        if new.get("where") == "build":
            before = [line for line in before if not KBUILD_PROGRESS.match(line)]
            after = [line for line in after if not KBUILD_PROGRESS.match(line)]
        if before != after or old["status"] != new["status"]:
            lines.append(f"step {new['index'] + 1}: {new['prompt']}{new['input']}")
            if old["status"] != new["status"]:
                lines.append(f"  status: {old['status']} published, {new['status']} now")
            lines += difflib.unified_diff(before, after, "published", "now", lineterm="", n=1)
    return "\n".join(lines)
