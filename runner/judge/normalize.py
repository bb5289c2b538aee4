"""Volatile values (timestamps, addresses, PIDs, durations) blanked for comparisons
(runner/judge/verdict.py compares captures through them)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from runner.judge import kernel_log

_RULES = [
    (kernel_log.TIMESTAMP, "[T] "),  # printk timestamps
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
# before it. Comparisons leave them out of build steps.
KBUILD_PROGRESS = re.compile(r"^  [A-Z][A-Z0-9_]{1,7}( \[M\])? +\S")

# Lines a build prints differently into a kept ~/build and a fresh one for the same
# work: a reader's first run starts from nothing, the published one may not have.
# Comparisons of build steps read each as the one form on the right.
KEPT_OR_FRESH = {
    "# No change to .config": "# .config written (or already as wanted)",
    "# configuration written to .config": "# .config written (or already as wanted)",
}


def normalize(line: str) -> str:
    for pattern, repl in _RULES:
        line = pattern.sub(repl, line)
    return line.rstrip()


def normalize_lines(lines: list[str]) -> list[str]:
    return [normalize(line) for line in lines]


def rename(line: str, renames: Mapping[str, str]) -> str:
    """`line` with each old name in `renames` replaced by its new one (whole words)."""
    for old in sorted(renames, key=len, reverse=True):
        line = re.sub(rf"(?<![\w.]){re.escape(old)}(?![\w])", renames[old], line)
    return line
