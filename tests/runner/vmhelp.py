"""Helpers for the VM tests: scenario builders and looks at this machine's processes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from runner.guest import vm
from runner.guest.image import GuestArtifacts
from runner.host import Accel
from runner.scenario import Scenario, Step

ROOT = Path(__file__).resolve().parent.parent.parent
TEST_KMOD = ROOT / "tests" / "kmod"

Guest = tuple[GuestArtifacts, Accel]  # what the `guest` fixture gives


def sh(session: str, text: str, expected: list[str] | None = None, **kw: object) -> Step:
    """A shell step in the guest (or, with where="build", on the build host)."""
    return Step(session, "console", text, expected=expected, **kw)  # type: ignore[arg-type]


def py(session: str, text: str, expected: list[str] | None = None, **kw: object) -> Step:
    """A step typed into `python3 -i` in the guest."""
    return Step(session, "pycon", text, expected=expected, **kw)  # type: ignore[arg-type]


def build(text: str, **kw: object) -> Step:
    """A step in the build environment's shell (session "build")."""
    return Step("build", "console", text, where="build", **kw)  # type: ignore[arg-type]


def scenario(name: str, *steps: Step) -> Scenario:
    """A scenario whose steps are sourced NAME:1, NAME:2, ... unless they say otherwise,
    each a block of its own (kernel-event expectations are per block)."""
    for n, step in enumerate(steps, 1):
        if step.source == "?":
            step.source = f"{name}:{n}"
        step.block = n - 1
    return Scenario(name, list(steps))


# --- processes and run dirs ---------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    pid: int
    comm: str
    state: str  # R, S, D, Z, ...
    ppid: int


def proc(pid: int) -> Proc | None:
    """The process `pid` as /proc/PID/stat shows it, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
    comm = text[text.index("(") + 1 : text.rindex(")")]
    state, ppid = text[text.rindex(")") + 2 :].split()[:2]
    return Proc(pid, comm, state, int(ppid))


def children(ppid: int) -> list[Proc]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            p = proc(int(entry.name))
            if p is not None and p.ppid == ppid:
                found.append(p)
    return found


def qemu_children(ppid: int | None = None) -> list[Proc]:
    """QEMU processes started by `ppid` (this process by default), zombies included."""
    # The kernel cuts comm to 15 characters: "qemu-system-x86".
    parent = os.getpid() if ppid is None else ppid
    return [p for p in children(parent) if p.comm.startswith("qemu-system")]


def is_dead(pid: int) -> bool:
    p = proc(pid)
    return p is None or p.state in ("Z", "X")


def rundirs(pid: int | None = None) -> list[Path]:
    """The runner's per-VM directories made by process `pid` (this one by default)."""
    run = vm.runtime_dir()
    return sorted(run.glob(f"vm-{os.getpid() if pid is None else pid}-*"))


def host_modules() -> dict[str, object]:
    """What the host kernel shows of its modules, to compare before and after a run.

    /proc/modules without its use counts and holders (other host activity may change
    those) and None where the host kernel has no module support; /sys/module, which
    lists built-in modules too; the taint flags, which a loaded out-of-tree module sets.
    """
    try:
        rows = Path("/proc/modules").read_text().splitlines()
        modules: list[tuple[str, ...]] | None = []
        for row in rows:
            name, size, _count, _holders, state, *_ = row.split()
            modules.append((name, size, state))
    except FileNotFoundError:
        modules = None
    sys_module = Path("/sys/module")
    sysmod = sorted(p.name for p in sys_module.iterdir()) if sys_module.is_dir() else None
    tainted = Path("/proc/sys/kernel/tainted").read_text().strip()
    return {"proc_modules": modules, "sys_module": sysmod, "tainted": tainted}
