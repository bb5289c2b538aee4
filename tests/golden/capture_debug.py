"""Capture the debug kernels' golden logs again: tests/golden/kernel_log/*-6.1-debug.log.

    python tests/golden/capture_debug.py [LOG ...]

builds (or brings up to date) the kernel of tests/golden/debug.config (for KCSAN,
which excludes KASAN, tests/golden/debug-kcsan.config) in its own kernel workspace
(runner/kernels/build.py), then boots it once per entry of BOOTS[LOG], through the
runner as a post's `boot=built` steps do (runner/execute.py): build steps make the
test modules of tests/kmod against that kernel's objects (~/build), guest steps
load them. Each guest boots cold (the script sets KBLOG_SNAPSHOTS=0), so each
boot's console log starts at "Linux version"; the boots of a log are written one
after the other into LOG.log. Then

    pytest tests/runner/test_kernel_log_golden.py --update-golden

rewrites LOG.events.json; read every event against the log before committing.
Lockdep turns itself off after its first report, and KASAN reports once per boot,
hence one boot per report.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from runner.execute import run_scenario  # noqa: E402
from runner.kernels import build as kernel_build  # noqa: E402
from runner.scenario import Scenario, Step  # noqa: E402

HERE = Path(__file__).resolve().parent
FRAGMENT = HERE / "debug.config"
# KCSAN excludes KASAN: its log comes from a kernel of its own.
KCSAN_FRAGMENT = HERE / "debug-kcsan.config"
GOLDEN = REPO / "tests" / "golden" / "kernel_log"
KMOD = REPO / "tests" / "kmod"
TIMEOUT = 180.0  # seconds a guest step may take under TCG

LOCKDEP = "sudo insmod lockdep_on_load/lockdep_on_load.ko report="
DEBUGFS = "/sys/kernel/debug"

# LOG -> its boots; a boot is the guest commands run in order, on a fresh guest.
BOOTS: dict[str, list[list[str]]] = {
    # One lockdep report per boot: it turns itself off after each (but "rcu").
    "lockdep-6.1-debug": [
        [f"{LOCKDEP}rcu", "sudo rmmod lockdep_on_load", f"{LOCKDEP}circular"],
        *[
            [f"{LOCKDEP}{report}"]
            for report in (
                "recursive",
                "inconsistent",
                "irq_inversion",
                "irq_order",
                "wait_context",
                "unlock_balance",
                "held_freed",
                "held_at_exit",
                "return_to_user",
                "nested",
                "non_static_key",
            )
        ],
    ],
    "sanitizers-6.1-debug": [
        [
            "sudo insmod ubsan_on_load/ubsan_on_load.ko",
            "sudo insmod odebug_on_load/odebug_on_load.ko",
            f"mountpoint -q {DEBUGFS} || sudo mount -t debugfs none {DEBUGFS}",
            "echo 1 | sudo tee /sys/module/kmemleak/parameters/verbose",
            "sudo insmod kmemleak_on_load/kmemleak_on_load.ko",
            # kmemleak reports objects at least 5 s old; a second scan catches what
            # a stale reference hid from the first. Before the next module: the
            # leaks' backtraces point into kmemleak_on_load's freed init text, which
            # a module loaded later would take over and be named after.
            f"sleep 6; echo scan | sudo tee {DEBUGFS}/kmemleak; echo scan | sudo tee "
            f"{DEBUGFS}/kmemleak; sudo head -n 4 {DEBUGFS}/kmemleak",
            "sudo insmod kasan_on_load/kasan_on_load.ko report=uaf",
        ],
        ["sudo insmod kasan_on_load/kasan_on_load.ko report=oob"],
    ],
    "kcsan-6.1-debug": [
        [
            f"mountpoint -q {DEBUGFS} || sudo mount -t debugfs none {DEBUGFS}",
            f"echo on | sudo tee {DEBUGFS}/kcsan",
            "sudo insmod kcsan_race_on_load/kcsan_race_on_load.ko",
        ],
    ],
    "stall-6.1-debug": [
        [
            "sudo insmod might_sleep_on_load/might_sleep_on_load.ko",
            "sudo insmod bad_page_on_load/bad_page_on_load.ko",
            "echo 2 | sudo tee /sys/module/workqueue/parameters/watchdog_thresh",
            "sudo insmod wq_lockup_on_load/wq_lockup_on_load.ko seconds=5",
            "echo 0 | sudo tee /sys/module/workqueue/parameters/watchdog_thresh",
            "echo 3 | sudo tee /sys/module/rcupdate/parameters/rcu_cpu_stall_timeout",
            "sudo insmod rcu_stall_on_load/rcu_stall_on_load.ko seconds=12",
        ],
    ],
}
FRAGMENTS = {"kcsan-6.1-debug": KCSAN_FRAGMENT}  # the others: FRAGMENT


def modules(commands: list[str]) -> list[str]:
    """The tests/kmod directories whose modules the commands load, in order."""
    found: list[str] = []
    for command in commands:
        for word in command.split():
            if word.endswith(".ko") and "/" in word:
                name = word.split("/")[0]
                if name not in found:
                    found.append(name)
    return found


def scenario(name: str, commands: list[str]) -> Scenario:
    """Build steps that make the modules against the built kernel, then the commands
    on it (boot=built)."""
    tree = f"$HOME/{kernel_build.INSIDE_SOURCE}"
    objects = f"$HOME/{kernel_build.INSIDE_BUILD}"
    # `make modules` (there are none in the kernel) leaves what out-of-tree modules
    # need beside the bzImage: the module linker script and Module.symvers.
    prepare = Step(
        "kb",
        "console",
        f"make -C {tree} O={objects} -j2 modules",
        where="build",
        timeout=600,
        source=f"{name}:modules",
    )
    steps = [prepare] + [
        Step(
            "kb",
            "console",
            f"make -C {m} KDIR={objects}",
            where="build",
            timeout=600,
            source=f"{name}:build-{m}",
        )
        for m in modules(commands)
    ]
    steps.append(Step("t", "console", "uname -r", boot="built", timeout=TIMEOUT, source=name))
    steps += [
        Step("t", "console", c, boot="built", timeout=TIMEOUT, source=f"{name}:{n}")
        for n, c in enumerate(commands)
    ]
    return Scenario(name, steps)


def capture(log_name: str, kernel_dir: Path) -> None:
    out = GOLDEN / f"{log_name}.log"
    parts: list[bytes] = []
    for n, commands in enumerate(BOOTS[log_name]):
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as tmp:
            console = Path(tmp) / "console.log"
            result = run_scenario(
                scenario(f"{log_name}-{n}", commands),
                kmod_dir=KMOD,
                kernel_dir=kernel_dir,
                console_copy=console,
                snapshots=False,
            )
            parts.append(console.read_bytes())
        for res in result.steps:
            print(f"  [{res.status.value}] {res.input}: {res.output.strip()[-300:]}")
            for event in res.events:
                print(f"    [kernel {event.kind}] {event.line}")
            if res.where == "build" and res.exit_status != 0:
                raise SystemExit(f"{log_name}, boot {n}: {res.input} failed:\n{res.output}")
        if result.error:
            raise SystemExit(f"{log_name}, boot {n}: {result.error}")
        print(f"{log_name}: boot {n} done in {time.monotonic() - started:.0f} s")
    out.write_bytes(b"".join(parts))
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("logs", nargs="*", help=f"some of {', '.join(BOOTS)} (default: all)")
    args = parser.parse_args()
    unknown = [name for name in args.logs if name not in BOOTS]
    if unknown:
        parser.error(f"no such log: {', '.join(unknown)}")
    os.environ["KBLOG_SNAPSHOTS"] = "0"
    for log_name in args.logs or BOOTS:
        fragment = FRAGMENTS.get(log_name, FRAGMENT)
        built = kernel_build.build(kernel_build.KernelSpec(fragment))
        seconds = " ".join(f"{k} {v:.0f} s" for k, v in built.seconds.items())
        print(f"{built.release}: {seconds}")
        with tempfile.TemporaryDirectory() as tmp:
            kernel_dir = Path(tmp)  # the fragment as a scenario's ~/kernel/guest.config
            (kernel_dir / kernel_build.FRAGMENT_NAME).write_text(fragment.read_text())
            capture(log_name, kernel_dir)


if __name__ == "__main__":
    main()
