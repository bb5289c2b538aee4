"""A tiny site of its own for a test: content/, a link to kmod/, snippets/, output/."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from runner.scenario import Step, StepResult

ROOT = Path(__file__).resolve().parents[1]
POSTS = Path(__file__).resolve().parent / "snippets" / "posts"


@dataclass
class MiniSite:
    root: Path

    @property
    def content(self) -> Path:
        return self.root / "content"

    @property
    def snippets(self) -> Path:
        return self.root / "snippets"

    @property
    def output(self) -> Path:
        return self.root / "output"

    def add(self, name: str, text: str | None = None) -> Path:
        path = self.content / name
        path.write_text(text if text is not None else (POSTS / name).read_text())
        return path

    def build(self, **kwargs):
        from kblog.build import build_site

        overrides = {
            "PATH": str(self.content),
            "KBLOG_KERNELS": ["6.1"],
            "SERIES": {},
            "CACHE_CONTENT": False,
            "LOAD_CONTENT_CACHE": False,
        }
        overrides.update(kwargs.pop("overrides", {}))
        return build_site(ROOT / "pelicanconf.py", self.output, overrides, **kwargs)


# The real series, as pelicanconf.py names it.
REAL_SERIES = {"kmod": "Writing Linux kernel modules"}


def real_site(root: Path) -> tuple[MiniSite, Any]:
    """The site's own posts and published captures in `root`, built as `make html`
    builds them: fresh captures are reused, so the bundles hold those of snippets/.
    Returns the site and the build's report."""
    site = MiniSite(root)
    shutil.copytree(ROOT / "content", site.content)
    shutil.copytree(ROOT / "snippets", site.snippets)
    (site.root / "kmod").symlink_to(ROOT / "kmod")
    (site.root / "kernel").symlink_to(ROOT / "kernel")
    report = site.build(overrides={"SERIES": REAL_SERIES, "KBLOG_KERNELS": ["6.1", "6.12"]})
    return site, report


def echo_runner(scenario: Any, kernel: str, kmod: Path) -> Any:
    """Stands in for the sandbox (kblog.captures.Runner): each step printed just what
    the post expects, so a build makes and keeps captures without a VM."""
    from runner import config
    from runner.scenario import Provenance, ScenarioResult, Status, StepResult

    release = config.kernel(kernel).release
    prov = Provenance(release, "test", "tcg", "test", "9.0", "2026-11-29T00:00:00Z", 0.1, 0.2)
    steps = []
    for n, step in enumerate(scenario.steps):
        shown = "\n".join(step.expected or [])
        steps.append(StepResult(n, Status.OK, "$ ", step.input, shown, 0, 0.01, step.where))
        steps[-1].kernel = release
    return ScenarioResult(scenario.name, prov, steps)


def tree_bytes(path: Path) -> dict[str, bytes]:
    """Every file under `path` with its content: equal means byte for byte the same."""
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def run_reproduce_box(page: Path, bundle: Path, reader: Path, env: dict[str, str]) -> str:
    """Run a post page's 'Reproduce this post' commands in `reader`, as a reader would
    with only the downloaded bundle; return what they printed (asserting success)."""
    from htmltree import parse

    (box,) = parse(page).find_all("section", "kb-reproduce")
    (pre,) = box.find_all("pre")
    commands = [line.removeprefix("$ ") for line in pre.text().splitlines()]
    assert commands[-1] == ".venv/bin/python -m runner.reproduce"
    reader.mkdir(parents=True, exist_ok=True)
    shutil.copy(bundle, reader)  # what the page's download link gives
    env = {k: v for k, v in env.items() if k != "PYTHONPATH"}  # the bundle alone
    done = subprocess.run(
        ["bash", "-euc", "\n".join(commands)],
        cwd=reader,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.replace("\r", "\n")


# A post whose second step sleeps long enough to be killed from outside mid-step.
KILLED_POST = """\
Title: Killed
Date: 2026-11-03
Slug: killed

Text.

```{.console session=t}
$ echo one
one
```

```{.console session=t}
$ sleep 30
```
"""
KILLED_LINE = 13  # the sleeping step's input line: the file:line the build names
assert KILLED_POST.splitlines()[KILLED_LINE - 1] == "$ sleep 30"


def watch_step_starts(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], threading.Event]:
    """For a step index, an event set once the build's display hears that step begin:
    the same news from both backends (the Docker one relays it from the container)."""
    from runner.display import ScenarioView

    started: dict[int, threading.Event] = {}
    lock = threading.Lock()
    original = ScenarioView.progress

    def event(index: int) -> threading.Event:
        with lock:
            return started.setdefault(index, threading.Event())

    def progress(
        self: ScenarioView, index: int, total: int, step: Step, result: StepResult | None
    ) -> None:
        if result is None:
            event(index).set()
        original(self, index, total, step, result)

    monkeypatch.setattr(ScenarioView, "progress", progress)
    return event


@dataclass
class KilledBuild:
    """A site build whose sandbox was killed while a step ran: what it said, how long
    it took, and what the kill returned (a pid, a container name; None: never killed)."""

    message: str
    seconds: float
    killed: object


def build_killed_mid_step(
    site: MiniSite,
    monkeypatch: pytest.MonkeyPatch,
    kill: Callable[[], object],
    step: int = 1,
    settle: float = 2.0,
) -> KilledBuild:
    """Build `site`, calling `kill` `settle` seconds after step `step` (from 0) begins,
    on a thread of its own as the OOM killer or `docker kill` would come; the build
    must fail (BuildError), and this returns how."""
    import time

    import pytest as pytest_module

    from kblog.build import BuildError

    step_started = watch_step_starts(monkeypatch)
    killed: list[object] = []

    def kill_while_it_runs() -> None:
        if not step_started(step).wait(timeout=50):
            return  # the build then fails the test by not failing as it should
        time.sleep(settle)  # its command is typed by then
        killed.append(kill())

    killer = threading.Thread(target=kill_while_it_runs)
    killer.start()
    started = time.monotonic()
    try:
        with pytest_module.raises(BuildError) as info:
            site.build()
    finally:
        killer.join(timeout=60)
    return KilledBuild(str(info.value), time.monotonic() - started, killed[0] if killed else None)
