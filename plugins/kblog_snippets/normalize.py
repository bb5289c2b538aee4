"""Volatile values (timestamps, addresses, PIDs, durations) blanked for comparisons."""

from __future__ import annotations

import re

_RULES = [
    (re.compile(r"/tmp/kblog-build-\w+/"), "/tmp/kblog-build-X/"),  # per-run build dirs
    (re.compile(r"^\[\s*\d+\.\d+\]"), "[T]"),  # printk timestamps
    (re.compile(r"\b(0x)?[0-9a-f]{8,16}\b"), "ADDR"),  # kernel addresses, hashes
    (re.compile(r"\+0x[0-9a-f]+/0x[0-9a-f]+"), "+OFF"),  # symbol offsets
    (re.compile(r"\b\d+\.\d+\b"), "N.N"),  # uptimes, load, durations
    # PIDs, sizes, majors; one- and two-digit numbers (counters) are kept.
    (re.compile(r"\b\d{3,}\b"), "N"),
]


def normalize(line: str) -> str:
    for pattern, repl in _RULES:
        line = pattern.sub(repl, line)
    return line.rstrip()


def normalize_lines(lines: list[str]) -> list[str]:
    return [normalize(line) for line in lines]
