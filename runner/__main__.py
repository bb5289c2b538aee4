"""python -m runner SCENARIO.json: run a scenario in a fresh guest and show the transcript."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from runner import config
from runner.execute import KMOD, run_scenario
from runner.scenario import Scenario, ScenarioError, ScenarioResult, Step, StepResult


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
        note = _note(res)
        if note:
            lines.append(f"    [{note}]")
        for event in res.events:
            lines.append(f"    [kernel {event.kind}] {event.line}")
    if result.error:
        lines.append(f"\nstopped: {result.error}")
    return "\n".join(lines)


def _shown_input(step: Step, res: StepResult) -> str:
    cont = "... " if step.language == "pycon" else "> "
    first, *rest = res.input.split("\n")
    return "\n".join([f"{res.prompt or '$ '}{first}", *(cont + line for line in rest)])


def _note(res: StepResult) -> str:
    parts = []
    if res.status != "ok":
        parts.append(res.status if res.status != "not-run" else f"not run: {res.output}")
    if res.matched is False:
        parts.append("output differs from the expectation:\n" + res.diff)
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner", description=__doc__)
    parser.add_argument("scenario", type=Path, help="a scenario as JSON (name, steps)")
    parser.add_argument("--kernel", default=None, help=f"one of {', '.join(config.KERNELS)}")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--console", type=Path, help="save the guest's whole console log here")
    parser.add_argument(
        "--kmod", type=Path, default=KMOD, help=f"the tree build steps start in (default: {KMOD})"
    )
    args = parser.parse_args(argv)
    try:
        scenario = Scenario.from_json(json.loads(args.scenario.read_text()))
        scenario.validate()
    except (OSError, ValueError, ScenarioError) as exc:
        print(f"{args.scenario}: {exc}", file=sys.stderr)
        return 2
    say = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    try:
        result = run_scenario(
            scenario, args.kernel, log=say, kmod_dir=args.kmod, console_copy=args.console
        )
    except KeyboardInterrupt:
        print("interrupted; the guest is gone", file=sys.stderr)
        return 130
    except (RuntimeError, KeyError, OSError) as exc:
        print(f"{args.scenario}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_json(), indent=1))
    else:
        print(transcript(scenario, result))
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
