"""python -m runner SCENARIO.json: run a scenario in a fresh guest and show the transcript.

SCENARIO.json may be -, read from stdin. --backend docker runs it in a fresh container
(runner/backends/docker.py); auto does so where a Docker engine answers. Each step is
shown as it runs (runner/display.py), on stderr; with --events, progress goes out as
JSON lines instead (runner/events.py): that is how the runner in the container
reports, and there rich is neither needed nor installed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from runner import backends, config, events, interrupt
from runner.events import Activity, Log, Progress
from runner.judge import verdict
from runner.scenario import Scenario, ScenarioError, ScenarioResult, Status, Step, StepResult
from runner.terminal import prompts_for


def transcript(scenario: Scenario, result: ScenarioResult) -> str:
    """The run as a person would have seen it, terminal by terminal."""
    prov = result.provenance
    lines = [
        f"# {scenario.name}: Linux {prov.kernel} ({prov.kernel_package}), {prov.accel} "
        f"({prov.accel_reason}), QEMU {prov.qemu}, boot {prov.boot_seconds:.1f} s, "
        f"total {prov.total_seconds:.1f} s"
    ]
    session = None
    for step, res in zip(scenario.steps, result.steps, strict=True):
        if step.session != session:
            session = step.session
            lines.append(f"\n--- {session} ({res.where}) ---")
        lines.append(_shown_input(step, res))
        if res.output.strip("\n") and res.status != "not-run":
            lines.append(res.output.rstrip("\n"))
        note = _note(step, res)
        if note:
            lines.append(f"    [{note}]")
        for event in res.events:
            lines.append(f"    [kernel {event.kind}] {event.line}")
    if result.error:
        lines.append(f"\nstopped: {result.error}")
    return "\n".join(lines)


def _shown_input(step: Step, res: StepResult) -> str:
    cont = prompts_for(step.language)["C"]
    first, *rest = res.input.split("\n")
    return "\n".join([f"{res.prompt or '$ '}{first}", *(cont + line for line in rest)])


def _note(step: Step, res: StepResult) -> str:
    parts = []
    if res.status == Status.HANG:
        parts.append(f"hang: {res.hang_proof or 'still running at its timeout'}")
    elif res.status != Status.OK:
        parts.append(verdict.explain(res.status, step, res.output))
    if res.matched is False:
        parts.append("output differs from the expectation:\n" + res.diff)
    return "; ".join(parts)


Reporters = tuple[Log, Progress | None, Activity | None]


@contextlib.contextmanager
def _reporters(args: argparse.Namespace) -> Iterator[Reporters]:
    """Where log lines, step progress and activity go while the run lasts: JSON
    events, plain stderr (--json), or the display on stderr."""
    if args.events:
        yield events.writers(sys.stderr)
        return
    if args.json:
        yield (lambda msg: print(msg, file=sys.stderr)), None, None
        return
    from runner.display import Display  # rich: on the host only, never in the container

    shown = Display()
    with shown.scenario(steps=True) as view:
        yield shown.print, view.progress, view.activity


def _run(args: argparse.Namespace, scenario: Scenario, reporters: Reporters) -> ScenarioResult:
    """Run on the backend asked for; auto picks docker where an engine answers."""
    say, progress, activity = reporters
    _name, run = backends.select(args.backend, say)
    return run(
        scenario,
        args.kernel,
        log=say,
        progress=progress,
        activity=activity,
        kmod_dir=args.kmod,
        kernel_dir=args.kernel_dir,
        console_copy=args.console,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner", description=__doc__)
    parser.add_argument(
        "scenario", type=Path, help="a scenario as JSON (name, steps); - reads it from stdin"
    )
    parser.add_argument("--kernel", default=None, help=f"one of {', '.join(config.KERNELS)}")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--console", type=Path, help="save the guest's whole console log here")
    parser.add_argument(
        "--kmod",
        type=Path,
        default=config.KMOD,
        help=f"the tree build steps start in (default: {config.KMOD})",
    )
    parser.add_argument(
        "--kernel-dir",
        type=Path,
        default=config.KERNEL_DIR,
        help="the guest kernel's config fragment, ~/kernel for the steps of a scenario "
        f"that builds the kernel (default: {config.KERNEL_DIR})",
    )
    parser.add_argument(
        "--events",
        action="store_true",
        help="report log lines and step progress as JSON lines on stderr",
    )
    parser.add_argument(
        "--backend",
        choices=backends.NAMES,
        default=backends.default_name(),
        help="in a fresh container where Docker answers (auto), always (docker), or "
        "with QEMU on this host (local); default: $KBLOG_BACKEND or auto",
    )
    args = parser.parse_args(argv)
    try:
        text = sys.stdin.read() if str(args.scenario) == "-" else args.scenario.read_text()
        scenario = Scenario.from_json(json.loads(text))
        scenario.validate()
    except (OSError, ValueError, ScenarioError) as exc:
        _fail(args, f"{args.scenario}: {exc}")
        return 2
    try:
        with _reporters(args) as reporters:
            result = _run(args, scenario, reporters)
    except KeyboardInterrupt:
        _fail(args, "interrupted; the guest is gone")
        return 130
    except (RuntimeError, KeyError, OSError) as exc:
        _fail(args, f"{args.scenario}: {exc}")
        return 2
    if args.json:
        print(json.dumps(result.to_json(), indent=1))
    else:
        print(transcript(scenario, result))
    failed = verdict.problems(scenario, result, config.kernel(args.kernel).name)
    if failed and not args.events:  # events carry results; the host judges them
        print("\n\n".join(failed), file=sys.stderr)
    return 1 if failed else 0


def _fail(args: argparse.Namespace, message: str) -> None:
    if args.events:
        print(events.encode_error(message), file=sys.stderr, flush=True)
    else:
        print(message, file=sys.stderr)


if __name__ == "__main__":
    interrupt.catch_sigint()
    sys.exit(main())
