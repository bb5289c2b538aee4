"""Benchmarks of the sandbox and the build: medians of several runs, ratios from one run.

Run with `invoke bench` (or `python -m bench.measure`); prints a table, writes bench/results.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner import config
from runner.events import Log
from runner.execute import run_scenario
from runner.guest import image as guest_image
from runner.guest import sessions as guest_session
from runner.guest import snapshot
from runner.guest.vm import VM, choose_accel
from runner.judge import verdict
from runner.scenario import Scenario, ScenarioResult, Step
from runner.terminal import Terminal

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"


def median_of(runs: int, measure: Callable[[], float]) -> dict[str, Any]:
    return _summary([measure() for _ in range(runs)])


def _summary(samples: list[float]) -> dict[str, Any]:
    return {
        "median_s": round(statistics.median(samples), 3),
        "samples_s": [round(s, 3) for s in samples],
    }


def first_command(vm: VM) -> None:
    """Open a guest shell as a post does (a restored guest's pooled one, else a new
    one) and wait for one command's answer."""
    agent = vm.agent
    assert agent is not None
    term = Terminal("bench", lambda data: None)
    agent.on_output = lambda _session, data: term.feed(data)
    if not guest_session.adopt(agent, {"bench": "shell"}):
        agent.spawn("bench", guest_session.program("shell"))
    term.wait_prompt(time.monotonic() + 30, vm.alive)
    agent.input("bench", b"true\n")
    if term.wait_prompt(time.monotonic() + 30, vm.alive).prompt is None:
        raise RuntimeError("the guest shell did not answer")


def vm_to_first_command(artifacts, accel, restore: Path | None) -> float:
    started = time.monotonic()
    with VM(artifacts, accel, restore=restore) as vm:
        first_command(vm)
        return time.monotonic() - started


def episode_scenario(post: str) -> Scenario:
    from kblog.parse import read_post

    return read_post(ROOT / "content" / post, f"content/{post}").scenario


def episode_run(scenario: Scenario, kernel_name: str) -> ScenarioResult:
    """A whole post's run, judged: a failed run is no measure."""
    result = run_scenario(scenario, kernel_name, log=lambda _m: None)
    failed = verdict.problems(scenario, result, kernel_name)
    if failed:
        raise RuntimeError(f"{scenario.name} failed: {failed[0]}")
    return result


def episode_seconds(scenario: Scenario, kernel_name: str) -> float:
    """How long a whole post's run took, by its own account."""
    return episode_run(scenario, kernel_name).provenance.total_seconds


def compiled(result: ScenarioResult) -> int:
    """How many objects the run's kernel builds compiled (kbuild's CC lines)."""
    made = [r.output for r in result.steps if r.input.endswith("bzImage")]
    return sum(len(COMPILED.findall(out.replace("\r", ""))) for out in made)


def site_build(plugin: bool) -> float:
    """One build of the real site with fresh captures; without the plugin, plain Pelican."""
    from kblog_snippets import bundle, views
    from pelican import Pelican
    from pelican.settings import read_settings

    from kblog.build import build_site
    from runner.judge import verdict

    # A `make html` is a new process: what one build memoizes must not help the next.
    for memo in (views.highlighted, verdict.events_of, verdict.kinds_of, bundle.pins):
        memo.cache_clear()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        if plugin:
            build_site(ROOT / "pelicanconf.py", Path(tmp) / "out", mode="never")
        else:
            conf = read_settings(
                str(ROOT / "pelicanconf.py"),
                override={"OUTPUT_PATH": tmp, "PLUGINS": ["kblog_series"]},
            )
            Pelican(conf).run()
        return time.monotonic() - started


# A warm build in a process of its own: what `make html` runs, less invoke's start-up.
WARM_PROCESS = (
    "import sys; from pathlib import Path; from kblog.build import build_site; "
    "build_site(Path(sys.argv[1]), Path(sys.argv[2]), mode='never')"
)


def site_build_process(plugin: bool) -> float:
    """site_build in a new process, imports and start-up included; without the plugin,
    the `pelican` command on the same posts."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        conf = ROOT / "pelicanconf.py"
        if plugin:
            argv = [sys.executable, "-c", WARM_PROCESS, str(conf), str(out)]
        else:
            plain = ["-e", 'PLUGINS=["kblog_series"]']
            argv = [sys.executable, "-m", "pelican", str(ROOT / "content"), "-s", str(conf)]
            argv += ["-o", str(out), *plain]
        started = time.monotonic()
        subprocess.run(argv, cwd=ROOT, env=env, check=True, capture_output=True)
        return time.monotonic() - started


def verify_series() -> float:
    """`invoke verify` of the whole series: every post on every kernel, re-run and judged."""
    from kblog import verify

    started = time.monotonic()
    plan = verify.plan(ROOT / "pelicanconf.py")
    outcome, _ = verify.run(plan, plan.cells)
    if outcome.failed():
        raise RuntimeError(f"the series did not verify:\n{outcome.table()}")
    return time.monotonic() - started


SYSCALL_PATCH = ROOT / "kmod" / "syscall" / "kblog_hello-6.1.patch"
GREETING = "kblog_hello: hello, %s, from %s (pid %d)\\n"


def edited_patch(directory: Path, n: int) -> Path:
    """The episode's patch with another greeting in the function body, kernel/sys.c
    dated now: an edit that rebuilds one file, as an author's next try would."""
    text = SYSCALL_PATCH.read_text()
    assert GREETING in text, "the patch's greeting changed: update bench/measure.py"
    text = text.replace(GREETING, GREETING.replace("hello,", f"hello #{n},"))
    now = time.strftime("%Y-%m-%d %H:%M:%S.%f000 +0000", time.gmtime())
    old_date = "+++ b/kernel/sys.c\t2026-11-29 12:00:00.000000000 +0000"
    assert old_date in text, "the patch's date for kernel/sys.c changed: update bench/measure.py"
    path = directory / f"edit-{n}.patch"
    path.write_text(text.replace(old_date, f"+++ b/kernel/sys.c\t{now}"))
    return path


DEBUG_FRAGMENT = config.KERNEL_DIR / "debug.config"


def debug_fragment(directory: Path) -> Path:
    """Episode 4's options, made as its page makes them: the guest's fragment, then
    the debugger's, one after the other (`cat guest.config debug.config`)."""
    from runner.kernels import build as kernel_build

    path = directory / "debug.config"
    path.write_text(kernel_build.FRAGMENT.read_text() + DEBUG_FRAGMENT.read_text())
    return path


def clean_and_rebuilds(runs: int, fragment: Path, top: Path, tmp: Path) -> dict[str, Any]:
    """A clean build of the episode's patched kernel with `fragment`, in a workspace of
    its own at `top` (once: it takes minutes), then rebuilds after a function-body edit
    (median of `runs`)."""
    from runner.kernels import build as kernel_build

    try:
        shutil.rmtree(top, ignore_errors=True)
        started = time.monotonic()
        spec = kernel_build.KernelSpec(fragment=fragment, patches=(SYSCALL_PATCH,))
        kernel_build.build(spec, log=lambda _m: None, top=top)
        clean = time.monotonic() - started
        count = iter(range(1, runs + 1))

        def rebuild() -> float:
            patch = edited_patch(tmp, next(count))
            started = time.monotonic()
            spec = kernel_build.KernelSpec(fragment=fragment, patches=(patch,))
            kernel_build.build(spec, log=lambda _m: None, top=top)
            return time.monotonic() - started

        return {"clean": _summary([clean]), "rebuild": median_of(runs, rebuild)}
    finally:
        shutil.rmtree(top, ignore_errors=True)


def kernel_builds(runs: int) -> dict[str, Any]:
    """Episode 3's kernel, then episode 4's (the same patch, debug.config on top), each
    built clean and rebuilt after an edit, one after the other in the same run."""
    from runner.kernels import build as kernel_build

    # Beside the source they link; no "-" in the names: a workspace is seeded from
    # those named like it (kernel_build.seed), and a clean build must start empty.
    parent = config.kernel_cache_dir() / "kernel-build"
    with tempfile.TemporaryDirectory() as tmp:
        plain = clean_and_rebuilds(runs, kernel_build.FRAGMENT, parent / "bench", Path(tmp))
        debug = debug_fragment(Path(tmp))
        withdebug = clean_and_rebuilds(runs, debug, parent / "bench_debug", Path(tmp))
    return {
        "kernel_clean_build": plain["clean"],
        "kernel_rebuild_after_edit": plain["rebuild"],
        "debug_kernel_clean_build": withdebug["clean"],
        "debug_kernel_rebuild_after_edit": withdebug["rebuild"],
        # The target: the debugger's kernel costs at most twice episode 3's, clean.
        "debug_clean_over_clean": round(
            withdebug["clean"]["median_s"] / plain["clean"]["median_s"], 2
        ),
    }


def episodes_3_and_4(runs: int, kernel_name: str) -> dict[str, Any]:
    """Episode 4 end to end, its debug kernel cached, alternating with episode 3, its
    own kernel cached: the ratio's two sides under the same load."""
    ep3 = episode_scenario("ep3-system-call.md")
    ep4 = episode_scenario("ep4-looking-inside.md")
    episode_seconds(ep4, kernel_name)  # its workspace up to date: a cached kernel
    three: list[float] = []
    four: list[float] = []
    made: list[int] = []
    for _ in range(runs):
        for scenario, samples in ((ep3, three), (ep4, four)):
            result = episode_run(scenario, kernel_name)
            samples.append(result.provenance.total_seconds)
            made.append(compiled(result))
    return {
        "episode4_scenario": _summary(four),
        "episode3_beside_episode4": _summary(three),
        # 0: each keeps its own objects, so neither build undoes the other's.
        "episodes_3_4_objects_compiled": max(made),
        # The target: at most twice episode 3, the gdb and drgn sessions included.
        "episode4_over_episode3": round(statistics.median(four) / statistics.median(three), 2),
    }


PROC_PATCH = ROOT / "tests" / "kernel_post" / "proc" / "kblog-version.patch"
# kbuild's line for each object it compiles ("  CC      fs/proc/version.o").
COMPILED = re.compile(r"^\s+CC\s+(\S+)$", re.M)


def kernel_posts_alternating(runs: int) -> dict[str, Any]:
    """Episode 3 and a second post that builds the kernel (patching fs/proc/version.c
    only), run one after the other `runs` times on 6.1, after one run of each that may
    build: each warm run's seconds, and how many objects its make compiled (0: the
    posts keep their own objects). Also what one workspace's objects take on disk."""
    from runner.kernels import build as kernel_build

    ep3 = episode_scenario("ep3-system-call.md")
    home = f"/home/{config.GUEST_USER}"
    recipe = kernel_build.recipe(home, [f"{home}/proc/{PROC_PATCH.name}"], jobs=2)
    proc = Scenario(
        "bench-proc-version",
        [
            *(
                Step("kb", "console", " ".join(c), source=f"proc:{n}", block=n, where="build",
                     timeout=1800)
                for n, c in enumerate(recipe)
            ),
            Step("t", "console", "cat /proc/version", source="proc:9", block=9, boot="built"),
        ],
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        kmod = Path(tmp) / "kmod"
        shutil.copytree(config.KMOD, kmod)
        (kmod / "proc").mkdir()
        shutil.copyfile(PROC_PATCH, kmod / "proc" / PROC_PATCH.name)
        shutil.copytree(config.KERNEL_DIR, Path(tmp) / "kernel")

        def once(scenario: Scenario) -> tuple[float, int, Path]:
            result = run_scenario(
                scenario, "6.1", log=lambda _m: None, kmod_dir=kmod, kernel_dir=Path(tmp) / "kernel"
            )
            if result.error:
                raise RuntimeError(f"{scenario.name} failed: {result.error}")
            made = [r.output for r in result.steps if r.input.endswith("bzImage")]
            count = len(COMPILED.findall(made[0].replace("\r", ""))) if made else 0
            workspace = [
                p
                for p in (config.kernel_cache_dir() / "kernel-build").glob(f"*-6.1-{scenario.name}")
            ]
            return result.provenance.total_seconds, count, workspace[0]

        first = {s.name: once(s) for s in (ep3, proc)}
        samples: dict[str, list[float]] = {ep3.name: [], proc.name: []}
        made: list[int] = []
        for _ in range(runs):
            for scenario in (ep3, proc):
                seconds, count, _ws = once(scenario)
                samples[scenario.name].append(seconds)
                made.append(count)
    sizes = [_disk_mb(ws / "objects") for _s, _c, ws in first.values()]
    return {
        "kernel_posts_first_runs": {
            name: {"seconds": round(s, 1), "compiled": c} for name, (s, c, _w) in first.items()
        },
        "episode3_alternating": _summary(samples[ep3.name]),
        "second_kernel_post_alternating": _summary(samples[proc.name]),
        "alternating_objects_compiled": max(made),
        "kernel_workspace_mb": round(max(sizes)),
    }


def _disk_mb(path: Path) -> float:
    """What `path` takes on disk (du), in MB: hard links into the source count once."""
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) / 1024


def run(
    runs: int = 3, quick: bool = False, kernel_build: bool = False, log: Log = lambda _m: None
) -> dict[str, Any]:
    """Every measure; with `kernel_build`, each kernel part's figures go to `log` as
    they come: they take tens of minutes, and a later part may fail."""
    kernel = config.kernel()
    artifacts = guest_image.prepare(kernel, log=lambda _m: None)
    accel = choose_accel(artifacts, log=lambda _m: None)
    state = snapshot.ensure(artifacts, accel, log=lambda _m: None)
    ep2 = episode_scenario("ep2-kernel-segfaults.md")
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "kernel": kernel.release,
        "accel": accel.name,
        "accel_reason": accel.reason,
        "runs": runs,
    }
    # The target is a ratio: its two sides alternate, so a machine that slows down
    # (or speeds up) during the run weighs on both alike.
    cold: list[float] = []
    episode: list[float] = []
    for _ in range(runs):
        cold.append(vm_to_first_command(artifacts, accel, None))
        episode.append(episode_seconds(ep2, kernel.name))
    results["cold_boot_to_first_command"] = _summary(cold)
    results["restore_to_first_command"] = median_of(
        runs, lambda: vm_to_first_command(artifacts, accel, state)
    )
    results["episode2_scenario"] = _summary(episode)
    # The target: a whole episode, hang included, in no more time than one cold boot.
    results["episode2_over_cold_boot"] = round(
        statistics.median(episode) / statistics.median(cold), 2
    )
    ep3 = episode_scenario("ep3-system-call.md")
    episode_seconds(ep3, kernel.name)  # the kernel workspace up to date: a cached kernel
    results["episode3_scenario"] = median_of(runs, lambda: episode_seconds(ep3, kernel.name))
    if kernel_build:
        for part in (
            lambda: episodes_3_and_4(runs, kernel.name),
            lambda: kernel_builds(runs),
            lambda: kernel_posts_alternating(runs),
        ):
            figures = part()
            log(json.dumps(figures))
            results.update(figures)
    if not quick:
        results["verify_series"] = median_of(runs, verify_series)
        # The target: the whole series, both kernels, in at most 3 cold boots.
        results["verify_over_cold_boot"] = round(
            results["verify_series"]["median_s"] / statistics.median(cold), 2
        )
    # Side by side in one run: plain Pelican, then the warm build, alternately.
    plain, warm = [], []
    for _ in range(max(runs, 5)):
        plain.append(site_build(plugin=False))
        warm.append(site_build(plugin=True))
    results["plain_pelican_build"] = {"median_s": round(statistics.median(plain), 3)}
    results["warm_build"] = {"median_s": round(statistics.median(warm), 3)}
    results["warm_over_plain"] = round(statistics.median(warm) / statistics.median(plain), 2)
    # The same pair as new processes: Python's start-up and every import counted too.
    plain, warm = [], []
    for _ in range(max(runs, 5)):
        plain.append(site_build_process(plugin=False))
        warm.append(site_build_process(plugin=True))
    results["plain_pelican_process"] = {"median_s": round(statistics.median(plain), 3)}
    results["warm_build_process"] = {"median_s": round(statistics.median(warm), 3)}
    ratio = statistics.median(warm) / statistics.median(plain)
    results["warm_over_plain_process"] = round(ratio, 2)
    return results


def table(results: dict[str, Any]) -> str:
    rows = [
        ("cold boot to first command", "cold_boot_to_first_command"),
        ("snapshot restore to first command", "restore_to_first_command"),
        ("episode 2 scenario (end to end)", "episode2_scenario"),
        ("episode 3 scenario, kernel cached", "episode3_scenario"),
        ("kernel: clean build (one run)", "kernel_clean_build"),
        ("kernel: rebuild after a body edit", "kernel_rebuild_after_edit"),
        ("debug kernel: clean build (one run)", "debug_kernel_clean_build"),
        ("debug kernel: rebuild after the edit", "debug_kernel_rebuild_after_edit"),
        ("episode 4 scenario, kernel cached", "episode4_scenario"),
        ("episode 3, alternating with episode 4", "episode3_beside_episode4"),
        ("episode 3, alternating with post 2", "episode3_alternating"),
        ("kernel post 2, alternating with ep 3", "second_kernel_post_alternating"),
        ("invoke verify, whole series", "verify_series"),
        ("plain Pelican build", "plain_pelican_build"),
        ("warm make html (captures fresh)", "warm_build"),
        ("plain Pelican, a new process", "plain_pelican_process"),
        ("warm build, a new process", "warm_build_process"),
    ]
    lines = [
        f"kernel {results['kernel']}, {results['accel']} ({results['accel_reason']}), "
        f"medians of {results['runs']} runs",
        f"{'measure':38} {'median':>8}",
    ]
    for label, key in rows:
        if key in results:
            lines.append(f"{label:38} {results[key]['median_s']:>7.2f}s")
    # Ratios and counts, each shown when its part of the bench ran: (label, key, unit).
    figures = [
        ("episode 2 / cold boot (target <= 1)", "episode2_over_cold_boot", "x"),
        ("warm build / plain Pelican", "warm_over_plain", "x"),
        ("the same, new processes", "warm_over_plain_process", "x"),
        ("verify / cold boot (target <= 3)", "verify_over_cold_boot", "x"),
        ("objects compiled, alternating (target 0)", "alternating_objects_compiled", ""),
        ("one kernel workspace on disk", "kernel_workspace_mb", " MB"),
        ("debug / ep 3 clean build (target <= 2)", "debug_clean_over_clean", "x"),
        ("episode 4 / episode 3 (target <= 2)", "episode4_over_episode3", "x"),
        ("objects compiled, eps 3 and 4 (target 0)", "episodes_3_4_objects_compiled", ""),
    ]
    for label, key, unit in figures:
        if key in results:
            value = results[key]
            shown = f"{value:>7.2f}" if isinstance(value, float) else f"{value:>7}"
            lines.append(f"{label:38} {shown}{unit}")
    if "episode3_scenario" in results:
        ep3 = results["episode3_scenario"]["median_s"]
        lines.append(f"{'episode 3, kernel cached (target <= 15)':38} {ep3:>7.2f}s")
    return "\n".join(lines)


def write(results: dict[str, Any]) -> None:
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(RESULTS)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        res = run()
        write(res)
        print(table(res))
