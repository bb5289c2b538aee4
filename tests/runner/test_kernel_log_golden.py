"""Golden kernel logs: every console log under tests/golden/kernel_log/ and the
events runner.judge.kernel_log finds in it, in the manner of syzkaller's pkg/report tests.

NAME.log is a console log: captured from a guest (it starts at "Linux version"),
or reconstructed from the kernel's format strings, which its first line, not part
of the log, says. NAME.events.json is the list of {kind, line} expected from it.
`pytest --update-golden` rewrites the .events.json files; review the diff.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from runner.judge import kernel_log
from runner.judge.kernel_log import Severity

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "kernel_log"
LOGS = sorted(GOLDEN.glob("*.log"))


def _expected_path(log: Path) -> Path:
    return log.with_suffix(".events.json")


RECONSTRUCTED = "# Reconstructed, not captured: "


def _lines(log: Path) -> list[str]:
    """The console lines of a golden log, without a reconstructed log's first line."""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return lines[1:] if lines and lines[0].startswith("#") else lines


def _found(log: Path) -> list[dict[str, str]]:
    return [asdict(e) for e in kernel_log.events(_lines(log))]


def test_there_are_golden_logs() -> None:
    assert len(LOGS) >= 5, f"golden logs missing from {GOLDEN}"


@pytest.mark.parametrize("log", LOGS, ids=[p.stem for p in LOGS])
def test_each_log_says_where_it_comes_from(log: Path) -> None:
    first = log.read_text(encoding="utf-8", errors="replace").splitlines()[0]
    if first.startswith("#"):
        assert first.startswith(RECONSTRUCTED), first
    else:  # captured from a cold boot
        assert kernel_log.message(first).startswith("Linux version "), first


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
# Captured from tests/kmod modules: NULL deref, divide by zero, non-canonical read,
# list_del twice (a list report, then BUG() and its oops).
TRAPS = [
    "null-deref",
    "Oops",
    "divide-error",
    "general-protection",
    "list-corruption",
    "BUG",
    "invalid-opcode",
]
KINDS = {
    "ep2-6.1-noref-read": ["page-fault", "Oops", "page-fault", "Oops", "recursive-fault"],
    "ep2-6.12-noref-read": ["page-fault", "Oops", "page-fault", "Oops", "recursive-fault"],
    "bug-6.12-bug-on-load": ["BUG", "invalid-opcode"],
    "warn-6.1-warn-on-load": ["WARNING"],
    "bug-6.1-bug-on-load": ["BUG", "invalid-opcode"],
    "panic-6.1-panic-on-load": ["panic"],
    "panic-6.1-sysrq-c": ["panic"],
    "oops-4.4-paging-request": ["page-fault", "Oops", "panic"],
    "oops-6.1-traps": TRAPS,
    "oops-6.12-traps": TRAPS,
    # Each refcount_t misuse is its own line, then the WARN splat that carries it.
    "atomic-6.1-sleep-refcount": [
        "scheduling-while-atomic",
        *["refcount", "WARNING"] * 2,
    ],
    "atomic-6.12-sleep-refcount-kfence": [
        "scheduling-while-atomic",
        *["refcount", "WARNING"] * 2,
        "KFENCE",
    ],
    # khungtaskd reports again every hung_task_timeout_secs while the task sleeps on.
    "hang-6.1-hung-task-soft-lockup": ["hung-task"] * 3 + ["soft-lockup"],
    "hang-6.12-hung-task-soft-lockup": ["hung-task"] * 3 + ["soft-lockup"] * 2,
    "boot-6.1-clean": [],
    "boot-6.12-clean": [],
    "quiet-6.1-notices": [],
    "quiet-reconstructed": [],
    "lockdep-6.12-reconstructed": [
        "lockdep-circular",
        "lockdep-recursive",
        "lockdep-inconsistent",
        "lockdep-irq-inversion",
        "lockdep-irq-order",
        "lockdep-wait-context",
        "lockdep-unlock-balance",
        "lockdep-held-freed",
        "lockdep-held-at-exit",
        "lockdep-return-to-user",  # its "is leaving the kernel" line is no second event
        "lockdep-rcu",
        "lockdep-non-static-key",
        "lockdep-nested",
        "lockdep-contention",
    ],
    "lockdep-4.9-reconstructed": [
        "lockdep-circular",
        "lockdep-recursive",
        "lockdep-unlock-balance",
        "lockdep-rcu",
        "lockdep-held-at-exit",  # header and "is exiting with locks still held": one
    ],
    "sanitizers-6.12-reconstructed": [
        "KASAN",
        "KCSAN",
        "KMSAN",
        "UBSAN",
        "ODEBUG",
        "WARNING",
        "refcount",
        "WARNING",
        "kmemleak",
    ],
    "stall-6.12-reconstructed": [
        "sleep-in-atomic",
        "hard-lockup",
        "rcu-stall",
        "rcu-stall",
        "rcu-stall",
        "workqueue-lockup",
        "bad-page",
        "bad-page",
    ],
    "oops-6.12-int3-stack-guard": [
        "int3",
        "stack-segment",
        "stack-guard-page",
        "stack-overflow",
        "panic",
    ],
    "oops-5.9-stack-overflow": ["stack-guard-page", "stack-overflow", "panic"],
    "oops-6.1-double-fault": ["double-fault", "panic"],
    "warn-mainline-one-line": ["WARNING", "WARNING", "UBSAN"],
    # Captured from tests/kmod/{slub_debug,netdev_leak,busy_inodes}_on_load: poison
    # spoilt, a double free (6.12.y follows each SLUB report with a WARN), three
    # waits for a device to become free, busy inodes made a BUG by
    # BUG_ON_DATA_CORRUPTION.
    "leak-6.1-slub-netdev-busy-inodes": [
        "SLUB",
        "SLUB",
        *["unregister-netdevice"] * 3,
        "busy-inodes",
        "BUG",
        "invalid-opcode",
    ],
    "leak-6.12-slub-netdev-busy-inodes": [
        *["SLUB", "WARNING"] * 2,
        *["unregister-netdevice"] * 3,
        "busy-inodes",
        "BUG",
        "invalid-opcode",
    ],
    "oops-5.4-gpf-non-canonical-reconstructed": ["general-protection"] * 2,
    # Captured on the debug kernel (tests/golden/debug.config, tests/golden/capture_debug.py),
    # one boot per lockdep report (lockdep reports once, but "suspicious RCU usage").
    # A mutex under a spinlock: might_sleep() reports before lockdep does.
    "lockdep-6.1-debug": [
        "lockdep-rcu",
        "lockdep-circular",
        "lockdep-recursive",
        "lockdep-inconsistent",
        "lockdep-irq-inversion",
        "lockdep-irq-order",
        "sleep-in-atomic",
        "lockdep-wait-context",
        "lockdep-unlock-balance",
        "lockdep-held-freed",
        "lockdep-held-at-exit",
        "lockdep-return-to-user",  # its "is leaving the kernel" line is no second event
        "lockdep-nested",
        "lockdep-non-static-key",
    ],
    # UBSAN twice, ODEBUG and its WARN, kmemleak's scan, KASAN (once per boot: two boots).
    "sanitizers-6.1-debug": [
        "UBSAN",
        "UBSAN",
        "ODEBUG",
        "WARNING",
        "kmemleak",
        "KASAN",
        "KASAN",
    ],
    "stall-6.1-debug": ["sleep-in-atomic", "bad-page", "workqueue-lockup", "rcu-stall"],
    # On the KCSAN kernel (tests/golden/debug-kcsan.config): a task and a timer interrupt.
    "kcsan-6.1-debug": ["KCSAN"],
    # The "is blocked on a mutex likely owned by" line after a report is no event.
    "hang-7.1-io-wait-reconstructed": ["hung-task"] * 2,
    "unwind-6.12-frame-pointer-reconstructed": ["bad-frame-pointer"] * 2,
    # The old busy-inodes wording was a plain printk: no BUG after it.
    "slub-5.10-busy-inodes-reconstructed": ["SLUB", "SLUB", "busy-inodes"],
}


def test_every_golden_log_has_its_kinds() -> None:
    assert sorted(KINDS) == [p.stem for p in LOGS]


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


# One line per family and spelling: kernels old and new, and the prefixes
# ("watchdog: ", "rcu: ", "Oops: ") that come and go between versions.
SINGLE_LINES = [
    ("Kernel panic - not syncing: Fatal exception", "panic"),
    ("Fixing recursive fault but reboot is needed!", "recursive-fault"),
    ("BUG: kernel NULL pointer dereference, address: 0000000000000008", "null-deref"),
    ("BUG: unable to handle kernel NULL pointer dereference at 0000000000000008", "null-deref"),
    ("BUG: unable to handle page fault for address: ffffffffc0a3b000", "page-fault"),
    ("BUG: unable to handle kernel paging request at ffffffffa0a3b000", "page-fault"),
    ("Oops: 0000 [#1] SMP", "Oops"),
    ("Oops: Oops: 0000 [#1] PREEMPT SMP NOPTI", "Oops"),
    ("Oops: segment not present: 0000 [#1] PREEMPT SMP NOPTI", "Oops"),
    ("general protection fault: 0000 [#1] SMP KASAN", "general-protection"),
    (
        "general protection fault, probably for non-canonical address "
        "0xdead000000000100: 0000 [#1] PREEMPT SMP NOPTI",
        "general-protection",
    ),
    (
        "Oops: general protection fault, probably for non-canonical address "
        "0xdffffc0000000001: 0000 [#1] PREEMPT SMP KASAN NOPTI",
        "general-protection",
    ),
    (
        "general protection fault for non-canonical address 0xdead000000000100: 0000 [#1] "
        "SMP NOPTI",
        "general-protection",
    ),
    (
        "Oops: general protection fault, maybe for address 0xffffc90000d3bd58: 0000 [#1] "
        "PREEMPT SMP NOPTI",
        "general-protection",
    ),
    ("segment-related general protection fault: 0010 [#1] SMP NOPTI", "general-protection"),
    ("kernel BUG at mm/slub.c:4563!", "BUG"),
    ("invalid opcode: 0000 [#1] PREEMPT SMP NOPTI", "invalid-opcode"),
    ("Oops: invalid opcode: 0000 [#1] PREEMPT SMP NOPTI", "invalid-opcode"),
    ("divide error: 0000 [#1] PREEMPT SMP NOPTI", "divide-error"),
    ("Oops: divide error: 0000 [#1] PREEMPT SMP NOPTI", "divide-error"),
    ("stack segment: 0000 [#1] SMP", "stack-segment"),
    ("Oops: stack segment: 0000 [#1] PREEMPT SMP NOPTI", "stack-segment"),
    ("double fault: 0000 [#1] PREEMPT SMP NOPTI", "double-fault"),
    ("int3: 0000 [#1] SMP", "int3"),
    ("Oops: int3: 0000 [#1] PREEMPT SMP NOPTI", "int3"),
    ("BUG: stack guard page was hit at 000000006422ef1c (stack is ..)", "stack-guard-page"),
    ("BUG: TASK stack guard page was hit at ffffc90000d0fff8 (stack is ..)", "stack-guard-page"),
    ("BUG: IRQ stack guard hit at ffffc90000003ff8 (stack is ..)", "stack-guard-page"),
    ("kernel stack overflow (double-fault): 0000 [#1] SMP NOPTI", "stack-overflow"),
    ("Oops: stack guard page: 0000 [#1] PREEMPT SMP NOPTI", "stack-overflow"),
    (
        "WARNING: CPU: 0 PID: 110 at drivers/demo/demo.c:24 demo_init+0x20/0x1000 [demo]",
        "WARNING",
    ),
    ("WARNING: CPU: 1 PID: 7 at demo_init+0x20/0x1000", "WARNING"),
    (
        "WARNING: drivers/demo/demo.c:24 at demo_init+0x20/0xff0 [demo], CPU#0: insmod/110",
        "WARNING",
    ),
    ("WARNING: at demo_init+0x20/0xff0 [demo], CPU#1: kworker/1:2/57", "WARNING"),
    ("refcount_t: underflow; use-after-free.", "refcount"),
    ("refcount_t: saturated; leaking memory.", "refcount"),
    ("refcount_t: addition on 0; use-after-free.", "refcount"),
    ("refcount_t: decrement hit 0; leaking memory.", "refcount"),
    ("refcount_t: increment on 0; use-after-free.", "refcount"),
    (
        "list_add corruption. next->prev should be prev (ffff88800a1b2c30), but was ..",
        "list-corruption",
    ),
    (
        "list_del corruption, ffff88800a1b2c30->next is LIST_POISON1 (dead000000000100)",
        "list-corruption",
    ),
    ("list_del corruption. prev->next should be ffff88800a1b2c30, but was ..", "list-corruption"),
    ("BUG: Bad page state in process insmod  pfn:06a41", "bad-page"),
    ("BUG: Bad page map in process python3  pte:8000000006a43025 pmd:06b1e067", "bad-page"),
    ("VFS: Busy inodes after unmount of busyfs (busyfs)", "busy-inodes"),
    (
        "VFS: Busy inodes after unmount of loop0. Self-destruct in 5 seconds.  Have a nice day...",
        "busy-inodes",
    ),
    ("WARNING: possible circular locking dependency detected", "lockdep-circular"),
    ("[ INFO: possible circular locking dependency detected ]", "lockdep-circular"),
    ("WARNING: possible recursive locking detected", "lockdep-recursive"),
    ("[ INFO: possible recursive locking detected ]", "lockdep-recursive"),
    ("WARNING: inconsistent lock state", "lockdep-inconsistent"),
    ("[ INFO: inconsistent lock state ]", "lockdep-inconsistent"),
    ("WARNING: possible irq lock inversion dependency detected", "lockdep-irq-inversion"),
    ("[ INFO: possible irq lock inversion dependency detected ]", "lockdep-irq-inversion"),
    ("WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected", "lockdep-irq-order"),
    ("[ INFO: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected ]", "lockdep-irq-order"),
    ("[ BUG: Invalid wait context ]", "lockdep-wait-context"),
    ("WARNING: bad unlock balance detected!", "lockdep-unlock-balance"),
    ("[ BUG: bad unlock balance detected! ]", "lockdep-unlock-balance"),
    ("WARNING: held lock freed!", "lockdep-held-freed"),
    ("[ BUG: held lock freed! ]", "lockdep-held-freed"),
    ("WARNING: kworker/0:1/23 still has locks held!", "lockdep-held-at-exit"),
    ("[ BUG: insmod/1833 still has locks held! ]", "lockdep-held-at-exit"),
    ("[ BUG: lock held at task exit time! ]", "lockdep-held-at-exit"),
    ("insmod/1833 is exiting with locks still held!", "lockdep-held-at-exit"),
    ("WARNING: lock held when returning to user space!", "lockdep-return-to-user"),
    ("[ BUG: lock held when returning to user space! ]", "lockdep-return-to-user"),
    ("insmod/273 is leaving the kernel with locks still held!", "lockdep-return-to-user"),
    ("WARNING: suspicious RCU usage", "lockdep-rcu"),
    ("[ INFO: suspicious RCU usage. ]", "lockdep-rcu"),
    ("[ INFO: suspicious rcu_dereference_check() usage. ]", "lockdep-rcu"),
    ("INFO: trying to register non-static key.", "lockdep-non-static-key"),
    ("WARNING: Nested lock was not taken", "lockdep-nested"),
    ("WARNING: bad contention detected!", "lockdep-contention"),
    ("BUG: KASAN: slab-use-after-free in uaf_init+0x5d/0xff0 [uaf]", "KASAN"),
    ("BUG: KASAN: use-after-free in ext4_find_dest_de+0x3c/0x200", "KASAN"),
    ("BUG: KFENCE: use-after-free read in demo_init+0xbb/0xff0 [demo]", "KFENCE"),
    ("BUG: KFENCE: out-of-bounds write in demo_init+0x5b/0xff0 [demo]", "KFENCE"),
    ("BUG: KCSAN: data-race in counter_bump / counter_bump", "KCSAN"),
    ("BUG kmalloc-64 (Not tainted): Poison overwritten", "SLUB"),
    ("BUG kmalloc-8 (Tainted: G    B      OE    ): Object already free", "SLUB"),
    ("BUG slub_debug_on_load (Tainted: G           OE     ): Object corrupt", "SLUB"),
    ("BUG kmalloc-rnd-05-64 (Not tainted): Right Redzone overwritten", "SLUB"),
    (
        "BUG kmalloc-32 (Not tainted): Slab has 0 allocated objects but 1 are to be freed",
        "SLUB",
    ),
    ("BUG: KMSAN: uninit-value in uninit_init+0x6a/0xff0 [uninit]", "KMSAN"),
    ("UBSAN: shift-out-of-bounds in drivers/demo/shift.c:18:14", "UBSAN"),
    ("UBSAN: array-index-out-of-bounds in net/core/dev.c:1234:5", "UBSAN"),
    ("UBSAN: Undefined behaviour in drivers/demo/shift.c:18:14", "UBSAN"),
    ("kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)", "kmemleak"),
    ("kmemleak: 1 new suspected memory leak (see /sys/kernel/debug/kmemleak)", "kmemleak"),
    (
        "ODEBUG: free active (active state 0) object type: timer_list hint: demo_timer_fn+0x0/0x20",
        "ODEBUG",
    ),
    ("BUG: scheduling while atomic: insmod/110/0x00000002", "scheduling-while-atomic"),
    (
        "BUG: sleeping function called from invalid context at kernel/locking/mutex.c:283",
        "sleep-in-atomic",
    ),
    ("watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [insmod:110]", "soft-lockup"),
    ("NMI watchdog: BUG: soft lockup - CPU#1 stuck for 23s! [insmod:1210]", "soft-lockup"),
    ("watchdog: Watchdog detected hard LOCKUP on cpu 1", "hard-lockup"),
    ("NMI watchdog: Watchdog detected hard LOCKUP on cpu 1", "hard-lockup"),
    ("INFO: rcu_sched self-detected stall on CPU", "rcu-stall"),
    ("rcu: INFO: rcu_preempt self-detected stall on CPU", "rcu-stall"),
    ("INFO: rcu_sched detected stalls on CPUs/tasks:", "rcu-stall"),
    ("rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", "rcu-stall"),
    ("rcu: INFO: rcu_preempt detected expedited stalls on CPUs/tasks: { 1-... }", "rcu-stall"),
    ("INFO: rcu_tasks detected stalls on tasks:", "rcu-stall"),
    ("INFO: task python3:121 blocked for more than 120 seconds.", "hung-task"),
    ("INFO: task kworker/u4:2:57 blocked for more than 143 seconds.", "hung-task"),
    ("INFO: task dd:412 blocked in I/O wait for more than 122 seconds.", "hung-task"),
    (
        "unregister_netdevice: waiting for leaky0 to become free. Usage count = 2",
        "unregister-netdevice",
    ),
    (
        "unregister_netdevice: waiting for lo to become free. Usage count = -1",
        "unregister-netdevice",
    ),
    (
        "WARNING: kernel stack regs at 000000007b1e93c4 in insmod:318 has bad 'bp' value "
        "00000000c1f2a6d8",
        "bad-frame-pointer",
    ),
    (
        "WARNING: kernel stack frame pointer at 0000000054e1a9b2 in kworker/0:2:41 has bad "
        "value 000000009d0c7e15",
        "bad-frame-pointer",
    ),
    (
        "BUG: workqueue lockup - pool cpus=0 node=0 flags=0x0 nice=0 stuck for 31s!",
        "workqueue-lockup",
    ),
    ("BUG: using smp_processor_id() in preemptible [00000000] code: insmod/110", "BUG"),
]


@pytest.mark.parametrize(("line", "kind"), SINGLE_LINES)
def test_single_lines(line: str, kind: str) -> None:
    assert [e.kind for e in kernel_log.events([f"[   12.345678] {line}"])] == [kind]
    # The same without a timestamp, as dmesg -t and snippets in posts show it.
    assert [e.kind for e in kernel_log.events([line])] == [kind]


def test_single_lines_cover_every_kind() -> None:
    assert {kind for _, kind in SINGLE_LINES} == set(kernel_log.KINDS)


def test_caller_id_is_part_of_the_timestamp() -> None:
    line = "[   12.345678][  T110] BUG: scheduling while atomic: insmod/110/0x00000002"
    (event,) = kernel_log.events([line])
    assert event.line.startswith("BUG: scheduling while atomic")


def test_a_repeated_header_far_from_its_report_is_an_event() -> None:
    near = [
        "[ BUG: lock held at task exit time! ]",
        "-----",
        "a/1 is exiting with locks still held!",
    ]
    far = [near[0], *["x"] * kernel_log.REPEAT_WINDOW, near[2]]
    assert len(kernel_log.events(near)) == 1
    assert len(kernel_log.events(far)) == 2


@pytest.mark.parametrize(
    "line",
    [
        "---[ end trace 0000000000000000 ]---",
        "------------[ cut here ]------------",
        "chardev: got major 245, create the node with: mknod /dev/chardev c 245 0",
        "note: python3[121] exited with irqs disabled",
        "Kernel Offset: 0x32a00000 from 0xffffffff81000000",
        "---[ end Kernel panic - not syncing: Fatal exception ]---",
        # A user-space process's fault, reported by the kernel: not a kernel splat.
        "traps: python3[123] general protection fault ip:7f1c8a2e2d9d sp:7ffd8b4a0f18 "
        "error:0 in libc.so.6[7f1c8a21c000+155000]",
        "traps: python3[124] trap invalid opcode ip:55d0e1d4a1c3 sp:7ffc3c6f4e40 error:0",
        "traps: python3[125] trap divide error ip:55d0e1d4a1c7 sp:7ffc3c6f4e40 error:0",
        "python3[126]: segfault at 8 ip 00007f1c8a2e2d9d sp 00007ffd8b4a0f18 error 4",
        # "BUG:" inside a word.
        "Boot_DEBUG: early console up",
        "ODEBUG: selftest passed",
        "ODEBUG: Out of memory. ODEBUG disabled",
        # Notices that start with "WARNING:" but are no WARN splat.
        "WARNING: The mand mount option has been deprecated and",
        "WARNING: module 'legacy_demo' uses a deprecated interface",
        "WARNING: CPU#1: NMI appears to be stuck (0->0)!",
        "WARNING: Spectre v2 mitigation leaves CPU vulnerable to RETBleed attacks, data leaks "
        "possible!",
        "tee (122): /proc/122/oom_adj is deprecated, please use /proc/122/oom_score_adj instead.",
        "INFO: lockdep is turned off.",
        "kmemleak: Automatic memory scanning thread started",
        "PANIC: double fault, error_code: 0x0",  # the oops header after it is the event
        # The lines of a report after its header, and look-alikes of the new families.
        "FIX kmalloc-8: Object at 0x000000001a6e9d03 not freed",
        "FIX slub_debug_on_load: Restoring Poison 0x00000000f7341de0-0x00000000f7341de0=0x6b",
        "[Poison overwritten] 0x00000000f7341de0-0x00000000f7341de0 @offset=3528. First byte "
        "0x2a instead of 0x6b",
        "SLUB: HWalign=64, Order=0-3, MinObjects=0, CPUs=1, Nodes=1",
        "INFO: task sync:431 is blocked on a mutex likely owned by task dd:412.",
        "Waiting for w1_bus_master1 to become free: refcnt=2.",
        "VFS: Disk quotas dquot_6.6.0",
        "unwind stack type:0 next_sp:0000000000000000 mask:0x2 graph_idx:0",
    ],
)
def test_quiet_lines(line: str) -> None:
    assert kernel_log.events([line]) == []
    assert kernel_log.events([f"[    7.123456] {line}"]) == []


# --- severities ----------------------------------------------------------------------


def test_every_kind_has_a_severity() -> None:
    shown = {kind for kinds in KINDS.values() for kind in kinds}
    assert shown <= set(kernel_log.KINDS)
    for kind in kernel_log.KINDS:
        assert isinstance(kernel_log.severity(kind), Severity)


def test_a_kind_has_one_severity_in_every_family() -> None:
    for family in kernel_log.FAMILIES:
        assert kernel_log.severity(family.kind) is family.severity, family.kind


def test_severities() -> None:
    assert kernel_log.severity("panic") is Severity.FATAL
    assert kernel_log.severity("Oops") is Severity.SEVERE
    assert kernel_log.severity("WARNING") is Severity.WARNING
    assert kernel_log.severity("lockdep-circular") is Severity.WARNING
    # A kind from a capture stored by another version of the table.
    assert kernel_log.severity("no-such-kind") is Severity.WARNING


def test_red_badges_are_the_fatal_and_severe_kinds() -> None:
    red = {k for k in kernel_log.KINDS if kernel_log.severity(k) is not Severity.WARNING}
    assert red == kernel_log.SEVERE
    assert {"panic", "BUG", "Oops", "soft-lockup", "KASAN"} <= kernel_log.SEVERE
    assert "WARNING" not in kernel_log.SEVERE


# --- every signature is backed by a golden log ---------------------------------------


def test_every_signature_matches_a_golden_log() -> None:
    """A family (or one of its patterns) that no golden log exercises fails here: add
    a captured log, or a reconstructed one following the kernel's format strings."""
    texts = [kernel_log.message(line) for log in LOGS for line in _lines(log)]
    unused = [
        f"{family.kind}: {pattern.pattern}"
        for family in kernel_log.FAMILIES
        for pattern in family.headers + family.repeats
        if not any(pattern.search(text) for text in texts)
    ]
    assert unused == []
