"""A post that builds the kernel fails clearly: a patch that does not apply shows
its rejected hunk, a compile error the compiler's file:line, an image older than
the tree or a lost config option stop before anything boots; each names the step."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

import pytest

from runner import config, execute, guests
from runner.events import Log
from runner.guest import image as guest_image
from runner.guest import vm
from runner.host import Accel
from runner.judge import verdict
from runner.kernels import build as kernel_build
from runner.scenario import Scenario, ScenarioResult, Step

PATCH = config.KMOD / "syscall" / "kblog_hello-6.1.patch"


def _kmod_with(tmp_path: Path, name: str, text: str) -> Path:
    kmod = tmp_path / "kmod"
    shutil.copytree(config.KMOD, kmod)
    (kmod / "syscall" / name).write_text(text)
    return kmod


def _step(n: int, text: str, expected: list[str] | None = None, **kw: object) -> Step:
    where = "guest" if kw.get("boot") else "build"
    timeout = 900 if text.startswith("make") else 60
    session = "t" if where == "guest" else "kb"
    return Step(session, "console", text, expected, where=where, source=f"post.md:{n}",
                block=n, timeout=timeout, **kw)  # type: ignore[arg-type]  # fmt: skip


def _run(scenario: Scenario, kmod: Path) -> tuple[list[str], ScenarioResult]:
    result = execute.run_scenario(scenario, "6.1", log=lambda msg: None, kmod_dir=kmod)
    return verdict.problems(scenario, result, "6.1"), result


@pytest.mark.vm
def test_a_patch_that_does_not_apply_shows_the_rejected_hunk(tmp_path: Path) -> None:
    broken = PATCH.read_text().replace(" #endif /* CONFIG_COMPAT */", " #endif /* CONFIG_KBLOG */")
    kmod = _kmod_with(tmp_path, "broken.patch", broken)
    scenario = Scenario(
        "broken",
        [
            _step(1, "cd ~/linux"),
            _step(2, "patch -p1 -Z --fuzz=0 < ~/syscall/broken.patch", ["patching file ..."]),
            _step(3, "uname -r", boot="built"),  # a post that patches the kernel boots it
        ],
    )
    problems, result = _run(scenario, kmod)
    assert result.steps[1].exit_status == 1
    assert "Hunk #1 FAILED" in result.steps[1].output
    assert problems[0].startswith("post.md:2: step 2 (kb: 'patch -p1 -Z")
    assert "~/linux/kernel/sys.c.rej:" in problems[0]
    assert "+SYSCALL_DEFINE1(kblog_hello, const char __user *, name)" in problems[0]


@pytest.mark.vm
def test_a_compile_error_names_the_file_and_line_and_nothing_boots(tmp_path: Path) -> None:
    """The broken file is dated now, later than its object, as an edited patch must be."""
    now = time.strftime("%Y-%m-%d %H:%M:%S.000000000 +0000", time.gmtime())
    broken = PATCH.read_text().replace("+\treturn len;\n+}", "+\treturn len\n+}")
    assert broken != PATCH.read_text()
    broken = broken.replace(
        "+++ b/kernel/sys.c\t2026-11-29 12:00:00.000000000 +0000", f"+++ b/kernel/sys.c\t{now}"
    )
    assert broken.count(now) == 1
    kmod = _kmod_with(tmp_path, "broken.patch", broken)
    make = "make O=~/build -j2 bzImage"
    scenario = Scenario(
        "compile-error",
        [
            _step(1, "cd ~/linux"),
            _step(2, "patch -p1 -Z --fuzz=0 < ~/syscall/broken.patch", ["patching file ..."] * 3),
            _step(3, make, ["...", "Kernel: arch/x86/boot/bzImage is ready  (#1)", "..."]),
            _step(4, "uname -r", boot="built"),
        ],
    )
    problems, result = _run(scenario, kmod)
    assert result.steps[2].exit_status not in (0, None)
    assert problems[0].startswith(f"post.md:3: step 3 (kb: {make!r}")
    assert "kernel/sys.c:" in problems[0] and "error:" in problems[0], problems[0]
    # The image predates the broken file: it is not booted as if it held the change.
    assert "changed after ~/build/arch/x86/boot/bzImage was built" in result.error
    assert result.error.startswith("post.md:4: boot=built: ")


class _LostOption(guests.KernelWorkspace):
    def __init__(self) -> None:  # no tree: artifacts() fails as accept() would
        pass

    def artifacts(self, log: Log) -> guest_image.GuestArtifacts:
        raise kernel_build.KernelBuildError(
            "kernel/guest.config: CONFIG_VIRTIO_BLK=y is not in .config: its "
            "dependencies are off (.config: not set)"
        )


def test_a_lost_config_option_stops_the_step_that_would_boot() -> None:
    kernels = guests.GuestKernels(
        None,  # type: ignore[arg-type]  # never booted: the check comes first
        Accel("tcg", "test"),
        log=lambda msg: None,
        snapshots=False,
        workspace=_LostOption(),
    )
    step = Step("t", "console", "uname -r", source="post.md:40", boot="built")
    with pytest.raises(guests.BuiltKernelError) as caught, contextlib.ExitStack() as stack:
        kernels.start(step, stack)
    assert str(caught.value) == (
        "post.md:40: boot=built: kernel/guest.config: CONFIG_VIRTIO_BLK=y is not in .config: "
        "its dependencies are off (.config: not set)"
    )


class _Unbootable(guests.KernelWorkspace):
    """A kernel without the drivers of its root disk: Debian's, whose virtio drivers
    are modules, with the initramfs of a built kernel, which loads none."""

    def __init__(self) -> None:
        pass

    def artifacts(self, log: Log) -> guest_image.GuestArtifacts:
        stock = guest_image.prepare(config.kernel("6.1"), log)
        kernel = config.Kernel("6.1-built", stock.kernel.release)
        return guest_image.prepare_built(kernel, stock.kernel_version, stock.vmlinuz, log)


@pytest.mark.vm
def test_a_kernel_that_does_not_boot_fails_its_step_with_the_console() -> None:
    stock = guest_image.prepare(config.kernel("6.1"), log=lambda msg: None)
    accel = vm.choose_accel(stock, log=lambda msg: None)
    kernels = guests.GuestKernels(stock, accel, lambda msg: None, None, _Unbootable())
    step = Step("t", "console", "uname -r", source="post.md:50", boot="built")
    started = time.monotonic()
    with pytest.raises(guests.BuiltKernelError) as caught, contextlib.ExitStack() as stack:
        kernels.start(step, stack)
    message = str(caught.value)
    assert message.startswith(
        "post.md:50: boot=built: the kernel the build steps made did not boot: "
    ), message
    assert "last console lines:" in message
    assert "kblog-init: cannot mount the root disk" in message, message
    # The guest powers off, QEMU exits at once (-no-reboot): no waiting for a timeout.
    assert time.monotonic() - started < vm.BOOT_TIMEOUT["tcg"]
