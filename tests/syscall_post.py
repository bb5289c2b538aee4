"""Episode 3 in short, for the tests that run it on either backend: patch the kernel,
build it, boot the build and call system call 451 on it; then the stock kernel."""

from __future__ import annotations

import shlex
from typing import Any

from runner import config
from runner.kernels import build as kernel_build
from runner.scenario import Scenario, ScenarioResult, Step

PATCH = config.KMOD / "syscall" / "kblog_hello-6.1.patch"
LONG_NAME = "x" * 40


def syscall_scenario(name: str = "syscall") -> Scenario:
    """The post's recipe as build steps, then guest steps on the built and stock kernels."""
    home = "/home/user"
    commands = kernel_build.recipe(home, [f"{home}/syscall/{PATCH.name}"], jobs=2)
    make = ["make", "-s", "-C", f"{home}/linux", f"O={home}/build"]
    headers = f"{home}/build/usr/include"  # where headers_install puts them: __NR_kblog_hello
    commands.append([*make, "headers_install"])
    commands.append(
        ["gcc", "-Wall", "-I", headers, "-o", "syscall/kblog_hello", "syscall/kblog_hello.c"]
    )

    def step(n: int, session: str, text: str, **kw: Any) -> Step:
        language = "pycon" if session == "py" else "console"
        return Step(session, language, text, source=f"test:{n}", block=n, **kw)

    build = [
        step(n, "kb", shlex.join(c), where="build", timeout=1800) for n, c in enumerate(commands)
    ]
    n = len(build)
    return Scenario(
        name,
        [
            *build,
            step(n, "t", "uname -r; ./syscall/kblog_hello world; echo status=$?", boot="built"),
            step(n + 1, "t", f"./syscall/kblog_hello {LONG_NAME}; echo status=$?", boot="built"),
            step(n + 2, "py", "import ctypes, os", boot="built"),
            step(n + 3, "py", "libc = ctypes.CDLL(None, use_errno=True)", boot="built"),
            step(
                n + 4, "py", "libc.syscall(451, 1), os.strerror(ctypes.get_errno())", boot="built"
            ),
            step(n + 5, "t", "./syscall/kblog_hello world; echo status=$?"),
        ],
    )


def check_syscall_run(scenario: Scenario, result: ScenarioResult) -> None:
    """What a run of syscall_scenario() must show, on either backend."""
    assert result.error == ""
    by_source = {s.source: r for s, r in zip(scenario.steps, result.steps, strict=True)}
    n = len(scenario.steps) - 6
    built, too_long, efault, stock = (by_source[f"test:{i}"] for i in (n, n + 1, n + 4, n + 5))
    assert built.kernel.endswith("-kblog"), built.kernel
    assert built.output.replace("\r", "").splitlines() == [built.kernel, "5", "status=0"]
    greeting = [line for line in built.kernel_log if "kblog_hello: hello, world" in line]
    assert greeting and "from kblog_hello (pid " in greeting[0], built.kernel_log
    assert built.events == []
    assert "kblog_hello: File name too long" in too_long.output
    assert "status=1" in too_long.output
    assert efault.output.strip() == "(-1, 'Bad address')"
    # Back on Debian's kernel, which has no number 451.
    assert stock.kernel == config.kernel("6.1").release
    assert "kblog_hello: Function not implemented" in stock.output
    assert result.provenance.kernel == stock.kernel
