"""What the theme's templates are given for a captured block and a page's provenance.

Data only: the HTML is theme/templates/kblog/*.html, rendered through Pelican's own
Jinja environment, so a theme can restyle every part. What the reader sees is always
the capture; the author's expected output is only used to check it (verdict.py).
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from typing import Any

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer

from runner.judge.kernel_log import SEVERE
from runner.scenario import Step, StepResult
from runner.terminal import prompts_for

_FORMATTER = HtmlFormatter(nowrap=True)
# Pygments' lexer for each language views highlights: an input line's, and "kmsg"
# for a kernel log. Pygments has no lexer for gdb's command line: it is shown plain.
LEXER_NAMES = {"console": "bash", "pycon": "python", "gdb": "text", "kmsg": "kmsg"}
WHERE_LABELS = {"guest": "guest VM", "build": "build environment"}
STATUS_TEXT = {
    "hang": "Still running after {timeout:g} s, as the post expects: it never returns.",
    "not-run": "Not run: {output}",
    "started": "Left running (output=later): a later block shows what it printed.",
}
# A hang the runner proved (runner.execute.HangProbe) says what it saw instead.
PROVEN_HANG_TEXT = "Stuck for good, as the post expects: {proof}."


@functools.cache
def lexer(language: str) -> Lexer:
    """The lexer of `language`, made when first needed: making one compiles its rules
    (tens of ms), and a build whose pages are kept (plugin.VIEWS) highlights nothing."""
    from pygments.lexers import get_lexer_by_name

    return get_lexer_by_name(LEXER_NAMES[language])


@functools.lru_cache(maxsize=2048)
def highlighted(text: str, language: str) -> str:
    """An input line highlighted (each kernel's panel types the same lines)."""
    return highlight(text, lexer(language), _FORMATTER).rstrip("\n")


def badges(results: list[StepResult]) -> list[dict[str, str]]:
    """A badge per distinct kernel event kind, in order of appearance."""
    seen: dict[str, str] = {}
    for result in results:
        for event in result.events:
            seen.setdefault(event.kind, "oops" if event.kind in SEVERE else "warn")
    return [{"label": kind, "severity": severity} for kind, severity in seen.items()]


def _transcript(step: Step, result: StepResult) -> list[dict[str, Any]]:
    """The terminal's lines for one step: each typed line with its prompt, then the output."""
    lines = result.input.split("\n")
    shown = prompts_for(step.language)
    prompts = [result.prompt or shown["P"]] + [shown["C"]] * (len(lines) - 1)
    out: list[dict[str, Any]] = [
        {"kind": "in", "prompt": prompt, "html": highlighted(line, step.language)}
        for prompt, line in zip(prompts, lines, strict=True)
    ]
    output = result.output.rstrip("\n") if result.status != "not-run" else ""
    if output:
        out.append({"kind": "out", "text": output})
    return out


def _status(step: Step, result: StepResult) -> dict[str, str] | None:
    template = STATUS_TEXT.get(result.status)
    if result.status == "hang" and result.hang_proof:
        text = PROVEN_HANG_TEXT.format(proof=result.hang_proof)
    elif template:
        text = template.format(timeout=step.timeout, output=result.output)
    else:
        return None
    return {"status": str(result.status), "text": text}


def panel(steps: list[Step], results: list[StepResult]) -> dict[str, Any]:
    """One kernel's view of a block: terminal head, transcript, status, kernel log."""
    first = steps[0]
    where = WHERE_LABELS[results[0].where]
    if first.boot == "built" and results[0].kernel:
        where = f"guest VM on the kernel built above, {results[0].kernel}"
    klog = [line for result in results for line in result.kernel_log]
    shown_badges = badges(results)
    kernel_log = None
    if klog:
        summary = f"Kernel log: {len(klog)} line{'s' if len(klog) != 1 else ''}"
        if shown_badges:
            summary += f" ({', '.join(b['label'] for b in shown_badges)})"
        html = highlight("\n".join(klog) + "\n", lexer("kmsg"), _FORMATTER)
        kernel_log = {"summary": summary, "html": html}
    statuses = [_status(s, r) for s, r in zip(steps, results, strict=True)]
    return {
        "session": first.session,
        "where": where,
        "badges": shown_badges,
        "duration": f"{sum(r.duration for r in results):.2f}",
        "transcript": [
            line for s, r in zip(steps, results, strict=True) for line in _transcript(s, r)
        ],
        "statuses": [s for s in statuses if s is not None],
        "kernel_log": kernel_log,
    }


def block(
    steps: list[Step], per_kernel: dict[str, list[StepResult]], differs: bool, first: int = 1
) -> dict[str, Any]:
    """A block's capture: one panel per kernel, the first kernel's shown first.
    `differs`: whether the kernels' captures differ (the capture service says); `first`
    numbers its first step in the post (from 1): its moment in the replay."""
    kernels = list(per_kernel)
    return {
        "id": block_id(steps[0]),
        "step": first,
        "session": steps[0].session,
        "where": per_kernel[kernels[0]][0].where,
        "differs": len(kernels) > 1 and differs,
        "panels": [
            {"kernel": kernel, "n": n, **panel(steps, per_kernel[kernel])}
            for n, kernel in enumerate(kernels, 1)
        ],
    }


def blocks(
    steps: list[Step], per_kernel: dict[str, list[StepResult]], differing: Collection[int]
) -> list[dict[str, Any]]:
    """Every block of a post (its steps share Step.block), in order, as `block` shows it;
    `differing`: the blocks whose captures differ across kernels."""
    indices: dict[int, list[int]] = {}
    for index, step in enumerate(steps):
        indices.setdefault(step.block, []).append(index)
    return [
        block(
            [steps[i] for i in members],
            {kernel: [results[i] for i in members] for kernel, results in per_kernel.items()},
            number in differing,
            members[0] + 1,
        )
        for number, members in indices.items()
    ]


def block_id(first_step: Step) -> str:
    """The HTML id of a block: the differences summary links to it."""
    return f"step-{first_step.block + 1}"


def differences(steps: list[Step], differing: Collection[int]) -> list[dict[str, str]]:
    """The blocks whose captures differ across kernels (`differing`, their numbers, as
    the capture service found them): id and a label for each."""
    found = []
    blocks: dict[int, list[int]] = {}
    for index, step in enumerate(steps):
        blocks.setdefault(step.block, []).append(index)
    for indices in blocks.values():
        block_steps = [steps[i] for i in indices]
        if block_steps[0].block in differing:
            typed = "; ".join(step.input.split("\n")[0] for step in block_steps)
            label = typed if len(typed) <= 60 else typed[:59] + "…"
            session = block_steps[0].session
            found.append({"step_id": block_id(block_steps[0]), "label": f"{session}: {label}"})
    return found


def provenance(
    provenances: list[dict[str, Any]], kmod: str, repository_url: str = ""
) -> dict[str, Any]:
    """On which kernels, how, and when the captures on a page were made: each stock
    kernel, and each kernel the post built, with what it was built from."""
    first = provenances[0]
    repository_url = repository_url.rstrip("/")
    built = []
    for p in provenances:
        b = p.get("built") or {}
        if not b:
            continue
        patch = f"kmod/{b['patch']}" if b.get("patch") else ""
        fragments = zip(
            b.get("fragment", "").split(), b.get("fragment_sha256", "").split(), strict=True
        )
        built.append(
            {
                "release": b["release"],
                "source": f"{b['source_package']} {b['source_version']}",
                "patch": patch,
                "patch_url": f"{repository_url}/{patch}" if repository_url and patch else "",
                "patch_sha256": b.get("patch_sha256", "")[:12],
                "fragments": [
                    {
                        "name": name,
                        "url": f"{repository_url}/{name}" if repository_url else "",
                        "sha256": digest[:12],
                    }
                    for name, digest in fragments
                ],
            }
        )
    return {
        "kernels": [{"release": p["kernel"], "package": p["kernel_package"]} for p in provenances],
        "built": built,
        "qemu": first["qemu"],
        "accel": str(first["accel"]).upper(),
        "kmod": kmod[:12],
        "dates": sorted({p["captured_at"][:10] for p in provenances}),
    }
