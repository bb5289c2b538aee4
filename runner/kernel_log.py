"""Kernel-log signatures: which console lines announce which kind of event.

The table is data so that a new signature is one line; tests run it over golden
logs captured from real guests (tests/golden/kernel_log/).
"""

from __future__ import annotations

import re

from runner.scenario import KernelEvent

TRAP_HEADER = (
    r"\b(Oops: )?(Oops|invalid opcode|divide error|stack segment|double fault)"
    r": [0-9a-f]{4} \[#\d+\]"
)

# (kind, pattern): the first pattern that matches a line names its event.
SIGNATURES: list[tuple[str, re.Pattern[str]]] = [
    # "---[ end Kernel panic - not syncing: ..." closes the same panic: not a second one.
    ("panic", re.compile(r"(?<!end )Kernel panic - not syncing")),
    ("recursive-fault", re.compile(r"Fixing recursive fault but reboot is needed")),
    ("soft-lockup", re.compile(r"watchdog: BUG: soft lockup")),
    # "unable to handle page fault" since 4.19; "kernel paging request" before it.
    ("BUG", re.compile(r"BUG: (unable to handle|kernel NULL pointer|scheduling while|sleeping)")),
    ("BUG", re.compile(r"(?<!watchdog: )BUG: ")),
    # BUG() and BUG_ON(): "kernel BUG at FILE:LINE!", then an oops named after the trap.
    ("BUG", re.compile(r"\bkernel BUG at \S+")),
    # The oops header is "TRAP: ERR [#N]": "Oops" for page faults, the trap's name for
    # the others (BUG() is "invalid opcode" on x86); 6.12 puts "Oops: " before all.
    ("Oops", re.compile(TRAP_HEADER)),
    ("general-protection", re.compile(r"general protection fault")),
    ("WARNING", re.compile(r"WARNING: CPU: \d+ PID: \d+ at ")),
    ("hung-task", re.compile(r"INFO: task .+ blocked for more than \d+ seconds")),
    ("rcu-stall", re.compile(r"rcu: INFO: rcu_\w+ (self-)?detected stalls?")),
]

# The kinds a reader should be warned about with a red badge.
SEVERE = {"panic", "recursive-fault", "BUG", "Oops", "general-protection", "soft-lockup"}

TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?")


def message(line: str) -> str:
    """A console line without its printk timestamp."""
    return TIMESTAMP.sub("", line)


def events(lines: list[str]) -> list[KernelEvent]:
    """The events announced in `lines`, in order."""
    found = []
    for line in lines:
        text = message(line)
        for kind, pattern in SIGNATURES:
            if pattern.search(text):
                found.append(KernelEvent(kind=kind, line=text.strip()))
                break
    return found
