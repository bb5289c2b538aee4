"""Kernel-log signatures: which console lines announce which kind of event.

The table is data (in the manner of syzkaller's pkg/report): one Family per kind of
splat, each with the header lines the kernel prints for it, old spellings included.
Tests run it over golden logs (tests/golden/kernel_log/), captured from real guests
where a stock Debian kernel can print the splat, reconstructed from the kernel's
format strings where it cannot. The patterns are for x86-64 guests.

A splat can name several events, one per headline it prints: a page fault is
"page-fault" ("BUG: unable to handle page fault ...") and then "Oops" (the oops
header); a refcount_t misuse is "refcount" and then "WARNING" (the WARN splat that
carries it). Only the headline lines match, never the register dump or the trace.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from runner.scenario import KernelEvent


class Severity(enum.Enum):
    """What an event means for the guest, as the page tells the reader."""

    # The kernel stopped or can no longer be trusted to go on: a reboot is due.
    FATAL = "fatal"
    # An oops killed the task in the kernel, memory was corrupted or used after free,
    # or a CPU or a task stopped making progress. The kernel may go on, damaged.
    SEVERE = "severe"
    # A check found misuse (a WARN, lockdep, a data race, undefined behaviour); the
    # kernel carried on and nothing is known to be damaged yet.
    WARNING = "warning"


@dataclass(frozen=True)
class Family:
    """One kind of splat: the lines that announce it and how bad it is."""

    kind: str  # short, stable, shown to readers as a badge; stored in KernelEvent.kind
    severity: Severity
    headers: tuple[re.Pattern[str], ...]
    # Lines further down the same report that name it again (old lockdep printed a
    # bracketed header, then "X is exiting with locks still held!"): an event only
    # when no header of this family came within REPEAT_WINDOW lines before.
    repeats: tuple[re.Pattern[str], ...] = ()
    # Whether the guest is gone once this is printed: its step is a panic, and no step
    # after it runs (runner/execute.py asks ends_guest()).
    ends_guest: bool = False


REPEAT_WINDOW = 5

# An oops header: "NAME: ERR [#N]", ERR the 16-bit error code, N the oops count.
# 6.12 puts "Oops: " before every NAME (so a page fault reads "Oops: Oops: 0000").
OOPS = r": [0-9a-f]{4} \[#\d+\]"
OOPS_PREFIX = r"\b(?:Oops: )?"

# Lockdep headers: "WARNING: TEXT" since 4.10, "[ INFO: TEXT ]" or "[ BUG: TEXT ]"
# before; "[ BUG: Invalid wait context ]" kept the old form.
LOCKDEP_PREFIX = r"(?:\bWARNING: |\[ (?:INFO|BUG): )"

_FATAL, _SEVERE, _WARNING = Severity.FATAL, Severity.SEVERE, Severity.WARNING


def _family(
    kind: str,
    severity: Severity,
    *headers: str,
    repeats: tuple[str, ...] = (),
    ends_guest: bool = False,
) -> Family:
    return Family(
        kind,
        severity,
        tuple(re.compile(h) for h in headers),
        tuple(re.compile(r) for r in repeats),
        ends_guest,
    )


def _trap(kind: str, severity: Severity, name: str) -> Family:
    """The oops header of a CPU exception the kernel names after the trap."""
    return _family(kind, severity, OOPS_PREFIX + name + OOPS)


def _lockdep(kind: str, text: str, repeats: tuple[str, ...] = ()) -> Family:
    return _family(kind, _WARNING, LOCKDEP_PREFIX + text, repeats=repeats)


# The first family with a matching line names the event, so the specific "BUG: ..."
# forms come before the catch-all "BUG".
FAMILIES: list[Family] = [
    # "---[ end Kernel panic - not syncing: ..." closes the same panic: not a second one.
    _family("panic", _FATAL, r"(?<!end )\bKernel panic - not syncing", ends_guest=True),
    _family("recursive-fault", _FATAL, r"\bFixing recursive fault but reboot is needed"),
    # Page faults: "BUG: ..." names the fault, then comes the oops header ("Oops").
    # Before 4.19: "unable to handle kernel NULL pointer dereference / paging request".
    _family(
        "null-deref",
        _SEVERE,
        r"\bBUG: (?:unable to handle )?kernel NULL pointer dereference\b",
    ),
    _family(
        "page-fault", _SEVERE, r"\bBUG: unable to handle (?:page fault|kernel paging request)\b"
    ),
    # A kernel stack overflow faults on the guard page below the stack (VMAP_STACK)
    # and ends in a panic. Newer kernels name the stack ("BUG: TASK stack guard page
    # was hit at") and head the oops "stack guard page"; older ones said "BUG: stack
    # guard page was hit at" and "kernel stack overflow (double-fault)".
    _family("stack-guard-page", _FATAL, r"\bBUG: (?:\w+ )?stack guard (?:page was )?hit at"),
    _family(
        "stack-overflow",
        _FATAL,
        OOPS_PREFIX + r"(?:stack guard page|kernel stack overflow \(double-fault\))" + OOPS,
    ),
    # Oops headers named after the trap. BUG() is ud2 on x86, hence "invalid opcode".
    _trap("double-fault", _FATAL, "double fault"),  # followed by "Machine halted." panic
    # "general protection fault, probably for non-canonical address 0x...: 0000 [#1]"
    # since 5.5 (", maybe for address 0x..." and "segment-related ..." too), plain
    # "general protection fault: 0000 [#1]" before; "general protection fault for
    # non-canonical address 0x..." is an earlier revision of the 5.5 patch, which
    # some patched kernels printed. The oops header only, never a user-space "traps:
    # comm[pid] general protection fault ip:..." line, a segfault of that process.
    _trap(
        "general-protection",
        _SEVERE,
        r"(?:segment-related )?general protection fault"
        r"(?:, [^:]*| for non-canonical address 0x[0-9a-f]+)?",
    ),
    _trap("invalid-opcode", _SEVERE, "invalid opcode"),
    _trap("divide-error", _SEVERE, "divide error"),
    _trap("stack-segment", _SEVERE, "stack segment"),
    _trap("int3", _SEVERE, "int3"),
    # "Oops" proper (page faults) and the rarer traps, which get no kind of their own.
    _trap(
        "Oops",
        _SEVERE,
        "(?:Oops|bounds|overflow|invalid TSS|segment not present|alignment check"
        "|coprocessor segment overrun)",
    ),
    # BUG() and BUG_ON(): "kernel BUG at FILE:LINE!", then an "invalid opcode" oops.
    _family("BUG", _SEVERE, r"\bkernel BUG at \S+"),
    # Memory-safety detectors.
    _family("KASAN", _SEVERE, r"\bBUG: KASAN: "),
    _family("KFENCE", _SEVERE, r"\bBUG: KFENCE: "),
    _family("KMSAN", _SEVERE, r"\bBUG: KMSAN: "),
    _family("KCSAN", _WARNING, r"\bBUG: KCSAN: "),
    # SLUB's own checks (slub_debug=, or a cache created with debug flags): "BUG CACHE
    # (Not tainted): Poison overwritten", "BUG kmalloc-8 (Tainted: G    B): Object
    # already free", ...; no colon after BUG, the taint between parentheses. Newer
    # kernels add a WARN after the report, a second event.
    _family("SLUB", _SEVERE, r"\bBUG \S+ \((?:Not tainted|Tainted: [ A-Z]+)\): \S"),
    # "UBSAN: shift-out-of-bounds in FILE:L:C" since 5.x, "UBSAN: Undefined behaviour
    # in FILE:L:C" before.
    _family("UBSAN", _WARNING, r"\bUBSAN: .+ in \S+:\d+"),
    _family("kmemleak", _WARNING, r"\bkmemleak: \d+ new suspected memory leaks?\b"),
    # refcount_t refuses to overflow or to revive a freed object: "refcount_t:
    # underflow; use-after-free.", "refcount_t: saturated; leaking memory.", ... inside
    # a WARN splat.
    _family("refcount", _SEVERE, r"\brefcount_t: [^;]+; (?:use-after-free|leaking memory)"),
    # CONFIG_DEBUG_LIST / LIST_HARDENED; a BUG follows where Debian sets
    # BUG_ON_DATA_CORRUPTION, a WARN otherwise.
    _family("list-corruption", _SEVERE, r"\blist_(?:add|del) corruption\b"),
    _family("bad-page", _SEVERE, r"\bBUG: Bad page (?:state|map)\b"),
    # Inodes still referenced when their superblock goes: "VFS: Busy inodes after
    # unmount of SB (FSTYPE)" since 6.3 (and 6.1.y), which BUG_ON_DATA_CORRUPTION
    # follows with a BUG, a WARN otherwise; "... of SB. Self-destruct in 5 seconds.
    # Have a nice day..." before.
    _family("busy-inodes", _SEVERE, r"\bVFS: Busy inodes after unmount of \S"),
    # debugobjects reports through WARN(): its "ODEBUG: ..." line names the misuse,
    # the WARNING line after it is the splat. Never a "BUG" ("ODEBUG:" ends in BUG:).
    _family("ODEBUG", _WARNING, r"\bODEBUG: .*\(active state \d+\)"),
    # Lockdep.
    _lockdep("lockdep-circular", r"possible circular locking dependency detected"),
    _lockdep("lockdep-recursive", r"possible recursive locking detected"),
    _lockdep("lockdep-inconsistent", r"inconsistent lock state"),
    _lockdep("lockdep-irq-inversion", r"possible irq lock inversion dependency detected"),
    _lockdep("lockdep-irq-order", r"\w+-safe -> \w+-unsafe lock order detected"),
    _lockdep("lockdep-wait-context", r"Invalid wait context"),
    _lockdep("lockdep-unlock-balance", r"bad unlock balance detected!"),
    _lockdep("lockdep-held-freed", r"held lock freed!"),
    # At task exit: "WARNING: comm/pid still has locks held!"; before 4.x the header
    # was "[ BUG: lock held at task exit time! ]" and the next lines said
    # "comm/pid is exiting with locks still held!".
    _lockdep(
        "lockdep-held-at-exit",
        r"(?:.+ still has locks held!|lock held at task exit time!)",
        repeats=(r" is exiting with locks still held!",),
    ),
    _lockdep(
        "lockdep-return-to-user",
        r"lock held when returning to user space!",
        repeats=(r" is leaving the kernel with locks still held!",),
    ),
    # "[ INFO: suspicious rcu_dereference_check() usage. ]" before 3.x.
    _lockdep("lockdep-rcu", r"suspicious (?:RCU|rcu_dereference_check\(\)) usage"),
    _lockdep("lockdep-nested", r"Nested lock was not taken"),
    _lockdep("lockdep-contention", r"bad contention detected!"),
    _family("lockdep-non-static-key", _WARNING, r"\bINFO: trying to register non-static key"),
    # Atomic context: the scheduler's own check needs no option; might_sleep()'s
    # needs CONFIG_DEBUG_ATOMIC_SLEEP and only says the code could sleep.
    _family("scheduling-while-atomic", _SEVERE, r"\bBUG: scheduling while atomic\b"),
    _family("sleep-in-atomic", _WARNING, r"\bBUG: sleeping function called from invalid context\b"),
    # Stuck CPUs and tasks. Older kernels prefixed the lockups with "NMI watchdog: ",
    # newer ones with "watchdog: "; RCU stalls have had "rcu: " since 4.20.
    _family("soft-lockup", _SEVERE, r"\bBUG: soft lockup - CPU#\d+ stuck for"),
    _family("hard-lockup", _SEVERE, r"\bWatchdog detected hard LOCKUP on cpu\b"),
    _family(
        "rcu-stall",
        _SEVERE,
        r"\bINFO: rcu_\w+ (?:self-detected stall on CPU|detected (?:expedited )?stalls on)",
    ),
    _family("workqueue-lockup", _SEVERE, r"\bBUG: workqueue lockup - pool\b"),
    # "blocked in I/O wait for more than" when the task sleeps in io_schedule() (7.1).
    _family(
        "hung-task",
        _WARNING,
        r"\bINFO: task .+:\d+ blocked(?: in I/O wait)? for more than \d+ seconds",
    ),
    # A reference to a network device that is never dropped: unregistering it waits
    # for good (reported every netdev_unregister_timeout_secs, 10 s by default).
    _family(
        "unregister-netdevice",
        _SEVERE,
        r"\bunregister_netdevice: waiting for \S+ to become free\. Usage count = -?\d+",
    ),
    # The frame-pointer unwinder (UNWINDER_FRAME_POINTER; Debian uses ORC) found a
    # frame pointer off the task's stack: "WARNING: kernel stack regs at ADDR in
    # COMM:PID has bad 'bp' value ADDR" or "WARNING: kernel stack frame pointer at
    # ADDR in COMM:PID has bad value ADDR". The stack may be corrupt; no WARN splat.
    _family(
        "bad-frame-pointer",
        _WARNING,
        r"\bWARNING: kernel stack (?:regs at \S+ in .+:\d+ has bad 'bp' value"
        r"|frame pointer at \S+ in .+:\d+ has bad value)",
    ),
    # WARN(): "WARNING: CPU: N PID: N at FILE:LINE FUNC+0x../0x.." (without FILE:LINE
    # when the kernel lacks DEBUG_BUGVERBOSE), and the newer one-line header
    # "WARNING: FILE:LINE at FUNC+0x../0x.., CPU#N: COMM/PID". Plain notices that
    # happen to start with "WARNING:" are not splats.
    _family(
        "WARNING",
        _WARNING,
        r"\bWARNING: CPU: \d+ PID: \d+ at ",
        r"\bWARNING: (?:\S+:\d+ )?at .+, CPU#\d+: .+/\d+",
    ),
    # Any other "BUG: ..." report, at a word boundary so that "ODEBUG:" and
    # "Boot_DEBUG:" are not one.
    _family("BUG", _SEVERE, r"\bBUG: "),
]

# The same kind may appear in two families ("BUG"): they must agree on the severity.
SEVERITIES: dict[str, Severity] = {f.kind: f.severity for f in FAMILIES}
KINDS = tuple(SEVERITIES)


ENDS_GUEST = frozenset(f.kind for f in FAMILIES if f.ends_guest)


def ends_guest(events: list[KernelEvent]) -> bool:
    """Whether one of these events leaves no guest to run the next step on."""
    return any(event.kind in ENDS_GUEST for event in events)


def severity(kind: str) -> Severity:
    """How bad an event of `kind` is. A kind this table no longer knows (a capture
    stored by an older detector) counts as a WARNING rather than breaking the page."""
    return SEVERITIES.get(kind, Severity.WARNING)


# The kinds a reader should be warned about with a red badge.
SEVERE = frozenset(k for k in KINDS if severity(k) is not Severity.WARNING)

# "[   12.345678] " and, with CONFIG_PRINTK_CALLER, "[   12.345678][  T123] ".
TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\](?:\[\s*[TC]\d+\])?\s?")


def message(line: str) -> str:
    """A console line without its printk timestamp."""
    return TIMESTAMP.sub("", line)


def match(text: str) -> tuple[Family, bool] | None:
    """The family whose header (False) or repeated header (True) `text` is."""
    for family in FAMILIES:
        if any(p.search(text) for p in family.headers):
            return family, False
        if any(p.search(text) for p in family.repeats):
            return family, True
    return None


def events(lines: list[str]) -> list[KernelEvent]:
    """The events announced in `lines`, in order."""
    found = []
    last_header: dict[str, int] = {}  # kind -> index of the line of its last event
    for n, line in enumerate(lines):
        text = message(line)
        hit = match(text)
        if hit is None:
            continue
        family, repeated = hit
        if repeated and n - last_header.get(family.kind, -REPEAT_WINDOW - 1) <= REPEAT_WINDOW:
            continue
        last_header[family.kind] = n
        found.append(KernelEvent(kind=family.kind, line=text.strip()))
    return found
