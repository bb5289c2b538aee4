"""Reproduce a post on this machine and compare with what its page shows.

    python -m runner.reproduce [BUNDLE_DIR] [--kernel 6.1] [--backend auto|docker|local]

BUNDLE_DIR holds scenario.json, captures.json (the published captures), kmod/ and
kernel/ (the config fragment of a kernel the post builds), as in the bundle each
post's page offers; it defaults to the current directory.
Each step is shown live (runner/display.py: step k of N, its session, how long it
has run, its latest output line, and a line per finished step); at the end, the run
is compared with the published capture once volatile values (timestamps,
addresses, PIDs) are blanked.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from rich.console import Console

from runner import backends, config, freeze, interrupt
from runner.display import Display
from runner.judge import verdict
from runner.kernels import abi as kernels
from runner.scenario import Scenario, ScenarioResult


@dataclass
class Reproduction:
    result: ScenarioResult
    problems: list[str]  # where the run is not what the post says (runner.judge.verdict)
    matches: bool  # the capture is the published one, volatile values aside
    report: str  # for the reader: failed steps, then how the run relates to the page
    fallback: str = ""  # the release run instead of a pinned one Debian no longer offers

    @property
    def outcome(self) -> verdict.Outcome:
        if self.problems:
            return verdict.Outcome.FAILED
        return verdict.Outcome.FRESH if self.matches else verdict.Outcome.DRIFTED

    @property
    def ok(self) -> bool:
        # On another ABI than the page's, differences are news, not a failure.
        return not verdict.fails(self.outcome, drift_fails=not self.fallback)


def compare(
    published: freeze.Entry | None,
    scenario: Scenario,
    result: ScenarioResult,
    kernel: str,
    fallback: str = "",
) -> Reproduction:
    """How this run relates to the post and to the published capture (`fallback`: the
    release the run used because Debian no longer offers the pinned one)."""
    problems = verdict.problems(scenario, result, kernel)
    lines = list(problems)
    if published is None:
        lines.append("no published capture for this kernel: nothing to compare with")
        return Reproduction(result, problems, False, "\n".join(lines), fallback)
    renames = verdict.kernel_renames(published.result, result) if fallback else None
    written = verdict.templates(scenario.steps, kernel)
    diff = verdict.compare(published.result.steps, result.steps, renames, written)
    where = ""
    if fallback:
        page = published.result.provenance.kernel
        where = f" (captured on {page}; this ran on {fallback})"
    if diff:
        lines.append(f"differs from the published capture{where}:\n" + diff)
    else:
        lines.append(f"matches the published capture{where} (volatile values aside)")
    return Reproduction(result, problems, not diff, "\n".join(lines), fallback)


def load_bundle(path: Path) -> tuple[Scenario, dict[str, freeze.Entry], Path]:
    scenario = Scenario.from_json(json.loads((path / "scenario.json").read_text()))
    return scenario, freeze.load(path / "captures.json"), path / "kmod"


def reproduce(
    scenario: Scenario,
    published: dict[str, freeze.Entry],
    kmod: Path,
    kernel: str | None = None,
    backend: str = "auto",
    out: TextIO = sys.stdout,
    run: backends.Backend | None = None,
    kernel_dir: Path | None = None,
) -> Reproduction:
    """Run the scenario with live progress on `out`, and compare it with the published
    capture.

    Build steps start in a copy of `kmod`; a post that builds the kernel gets
    `kernel_dir` too (default: the kernel/ beside kmod/, as a bundle has it).

    Where Debian no longer offers the pinned kernel, run on the newest ABI of its
    series instead, say so, and report how that run differs from the page. `run`
    replaces the backend `backend` names.
    """
    shown = Display(Console(file=out))
    say = shown.print
    if run is None:
        _, run = backends.select(backend, say)
    label = config.kernel(kernel).name
    kernel_dir = kernel_dir or config.kernel_dir_for(kmod)
    say(f"reproducing {scenario.name} ({len(scenario.steps)} steps) on Linux {label}")

    def shown_run(backend_run: backends.Backend) -> ScenarioResult:
        with shown.scenario(steps=True) as view:
            return backend_run(
                scenario,
                label,
                kmod_dir=kmod,
                kernel_dir=kernel_dir,
                log=say,
                progress=view.progress,
                activity=view.activity,
            )

    try:
        result = shown_run(run)
    except kernels.KernelGone as gone:
        if gone.newest is None:
            raise
        say(
            f"Debian no longer offers {gone.kernel.release}, the kernel this bundle pins: "
            f"reproducing on {gone.newest}, the newest Linux {label} ABI, instead"
        )
        with config.releases_override({label: gone.newest}):
            result = shown_run(run)
        return compare(published.get(label), scenario, result, label, fallback=gone.newest)
    return compare(published.get(label), scenario, result, label)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.reproduce", description=__doc__)
    parser.add_argument("bundle", nargs="?", type=Path, default=Path("."))
    parser.add_argument("--kernel", default=None, help=f"one of {', '.join(config.KERNELS)}")
    parser.add_argument("--backend", choices=backends.NAMES, default=backends.default_name())
    parser.add_argument("--json", type=Path, help="also write the new capture here")
    args = parser.parse_args(argv)
    try:
        scenario, published, kmod = load_bundle(args.bundle)
        done = reproduce(scenario, published, kmod, args.kernel, args.backend)
    except KeyboardInterrupt:
        print("\ninterrupted; the guest is gone", file=sys.stderr)
        return 130
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        print(f"cannot reproduce: {exc}", file=sys.stderr)
        return 2
    if args.json:
        args.json.write_text(json.dumps(done.result.to_json(), indent=1))
    print(done.report)
    return 0 if done.ok else 1


if __name__ == "__main__":
    interrupt.catch_sigint()
    sys.exit(main())
