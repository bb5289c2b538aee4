"""Two posts that build the kernel, one after the other and back: each keeps its own
objects, so neither rebuilds nor refuses the other's work (issue #20). Episode 3 in
short patches the system call table; the other post patches fs/proc/version.c alone."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from syscall_post import check_syscall_run, syscall_scenario

from runner import config, execute
from runner.kernels import build as kernel_build
from runner.scenario import Scenario, ScenarioResult, Step

pytestmark = pytest.mark.vm

PROC_PATCH = Path(__file__).resolve().parents[1] / "kernel_post" / "proc" / "kblog-version.patch"
# kbuild's line for each object it compiles ("  CC      fs/proc/version.o").
COMPILED = re.compile(r"^\s+CC\s+(\S+)$", re.M)


def proc_scenario() -> Scenario:
    """The other kernel post: patch fs/proc/version.c, build, boot, read the file."""
    home = f"/home/{config.GUEST_USER}"
    commands = kernel_build.recipe(home, [f"{home}/proc/{PROC_PATCH.name}"], jobs=2)

    def step(n: int, text: str, **kw: Any) -> Step:
        return Step(
            "t" if kw.get("boot") else "kb", "console", text, source=f"proc:{n}", block=n, **kw
        )

    build = [step(n, " ".join(c), where="build", timeout=1800) for n, c in enumerate(commands)]
    return Scenario("proc-version", [*build, step(len(build), "cat /proc/version", boot="built")])


def compiled(scenario: Scenario, result: ScenarioResult) -> list[str]:
    """The objects the run's `make bzImage` compiled."""
    (made,) = [
        r for s, r in zip(scenario.steps, result.steps, strict=True) if s.input.endswith("bzImage")
    ]
    return COMPILED.findall(made.output.replace("\r", ""))


def test_two_kernel_posts_alternate_without_rebuilding_each_other(tmp_path: Path) -> None:
    kmod = tmp_path / "kmod"
    shutil.copytree(config.KMOD, kmod)
    (kmod / "proc").mkdir()
    shutil.copyfile(PROC_PATCH, kmod / "proc" / PROC_PATCH.name)
    shutil.copytree(config.KERNEL_DIR, tmp_path / "kernel")
    ep3, proc = syscall_scenario(), proc_scenario()

    def run(scenario: Scenario) -> ScenarioResult:
        result = execute.run_scenario(
            scenario, "6.1", log=lambda _m: None, kmod_dir=kmod, kernel_dir=tmp_path / "kernel"
        )
        assert result.error == "", result.error
        return result

    def check_proc(result: ScenarioResult) -> None:
        shown = result.steps[-1].output.replace("\r", "").splitlines()
        assert shown[0].startswith("Linux version 6.1.") and "-kblog" in shown[0], shown
        assert shown[1:] == ["kblog: this kernel was patched"]
        built = result.provenance.built
        assert built["patch"] == f"proc/{PROC_PATCH.name}"
        assert built["source_package"] == "linux-source-6.1"

    run(ep3)  # the first runs may build: a fresh machine has nothing yet
    check_proc(run(proc))
    for _ in range(2):  # then each, warm, compiles nothing, whatever ran before it
        done = run(ep3)
        check_syscall_run(ep3, done)
        assert compiled(ep3, done) == []
        assert done.provenance.built["patch"] == "syscall/kblog_hello-6.1.patch"
        done = run(proc)
        check_proc(done)
        assert compiled(proc, done) == []
