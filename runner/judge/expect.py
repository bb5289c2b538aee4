"""Matching a step's real output against what its author wrote.

Rules: a line that is exactly `...` matches any number of lines (none included);
`...` inside a line matches any text on that line; `@name@` matches one run of
non-blank characters and captures it under `name` for later inputs (`@@` is a
plain `@`, in outputs and inputs alike). Where a
kernel behaves differently by design, a line starting with `[on NAME] ` is
expected on the kernel labelled NAME only (see runner/config.py).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

ELLIPSIS = "..."
CAPTURE = re.compile(r"@@|@([A-Za-z_][A-Za-z0-9_]*)@")


KERNEL_PREFIX = re.compile(r"^\[on ([\w.+-]+)\] ?")


def for_kernel(expected: list[str], kernel: str) -> list[str]:
    """The lines expected on `kernel`: "[on 6.12] text" lines count on 6.12 only."""
    lines = []
    for line in expected:
        m = KERNEL_PREFIX.match(line)
        if m is None:
            lines.append(line)
        elif m.group(1) == kernel:
            lines.append(line[m.end() :])
    return lines


@dataclass
class Match:
    ok: bool
    captures: dict[str, str] = field(default_factory=dict)
    diff: str = ""


def _line_pattern(line: str) -> re.Pattern[str]:
    parts: list[str] = []
    pos = 0
    token = re.compile(r"\.\.\.|@@|@([A-Za-z_][A-Za-z0-9_]*)@")
    seen: set[str] = set()
    for m in token.finditer(line):
        parts.append(re.escape(line[pos : m.start()]))
        if m.group(0) == ELLIPSIS:
            parts.append(".*?")
        elif m.group(0) == "@@":
            parts.append("@")
        elif m.group(1) in seen:
            parts.append(f"(?P={m.group(1)})")
        else:
            seen.add(m.group(1))
            parts.append(f"(?P<{m.group(1)}>\\S+?)")
        pos = m.end()
    parts.append(re.escape(line[pos:]))
    return re.compile("".join(parts) + r"\Z")


def match(expected: list[str], actual: list[str]) -> Match:
    """Match line lists; on failure the diff shows expected against actual."""
    found = _match(expected, actual)
    if found is not None:
        return Match(True, found[0])
    diff = "\n".join(
        difflib.unified_diff(expected, actual, "expected", "captured", lineterm="", n=2)
    )
    return Match(False, diff=diff)


def as_written(expected: list[str], actual: list[str]) -> list[str]:
    """`actual` with each line that an expected line matched through `...` or
    `@name@` inside it read as that expected line: what the author declared as
    varying reads the same in every run (a PID, a count), so comparisons of two
    runs leave it aside. Lines under a whole-line `...`, and every line when the
    expectation does not match, are kept as they are."""
    found = _match(expected, actual)
    if found is None:
        return actual
    lines = list(actual)
    for j, i in found[1].items():
        if _VARYING.search(expected[i]):
            lines[j] = expected[i].rstrip()
    return lines


_VARYING = re.compile(r"\.\.\.|@[A-Za-z_][A-Za-z0-9_]*@")
# Where a match went: for each actual line (by index), the expected line it matched.
_Pairs = dict[int, int]


def _match(expected: list[str], actual: list[str]) -> tuple[dict[str, str], _Pairs] | None:
    patterns = [
        None if line.strip() == ELLIPSIS else _line_pattern(line.rstrip()) for line in expected
    ]
    return _match_from(patterns, [line.rstrip() for line in actual], 0, 0, {}, {})


def _match_from(
    patterns: list[re.Pattern[str] | None],
    actual: list[str],
    i: int,
    j: int,
    caps: dict[str, str],
    pairs: _Pairs,
) -> tuple[dict[str, str], _Pairs] | None:
    while i < len(patterns):
        pattern = patterns[i]
        if pattern is None:
            if i == len(patterns) - 1:
                return caps, pairs
            for k in range(j, len(actual) + 1):
                found = _match_from(patterns, actual, i + 1, k, dict(caps), dict(pairs))
                if found is not None:
                    return found
            return None
        if j >= len(actual):
            return None
        m = pattern.match(actual[j])
        if m is None:
            return None
        got = {k: v for k, v in m.groupdict().items() if v is not None}
        if any(caps.get(k, v) != v for k, v in got.items()):
            return None  # a name seen on an earlier line stands for the same text here
        caps.update(got)
        pairs[j] = i
        i, j = i + 1, j + 1
    return (caps, pairs) if j == len(actual) else None


def says_nothing(expected: list[str]) -> bool:
    """True when the expectation names no line: none at all, or only `...` lines."""
    return all(line.strip() == ELLIPSIS for line in expected)


class CaptureError(ValueError):
    """An input uses @name@ before any output captured it."""


def substitute(text: str, captures: dict[str, str], source: str) -> str:
    """Replace @name@ in an input line with the value captured earlier; @@ is one @."""

    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if name is None:
            return "@"
        if name not in captures:
            raise CaptureError(f"{source}: @{name}@ is used before any output captured it")
        return captures[name]

    return CAPTURE.sub(value, text)


# --- kernel events --------------------------------------------------------------


def events_for_kernel(declared: dict[str, list[str]] | None, kernel: str) -> list[str]:
    """The event kinds a block declares for `kernel` (its own entry, else "*")."""
    if not declared:
        return []
    return declared.get(kernel, declared.get("*", []))
