"""HTML for executed blocks: the captured terminal, its kernel log and badges.

What the reader sees is always the capture; the author's expected output is only
used to check it.
"""

from __future__ import annotations

from html import escape

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import BashLexer, KernelLogLexer, PythonLexer

from runner.judge.kernel_log import SEVERE
from runner.judge.normalize import normalize_lines
from runner.scenario import Step, StepResult
from runner.terminal import prompts_for

_FORMATTER = HtmlFormatter(nowrap=True)
_INPUT_LEXERS = {"console": BashLexer(), "pycon": PythonLexer()}
WHERE_LABELS = {"guest": "guest VM", "build": "build environment"}
STATUS_TEXT = {
    "hang": "Still running after {timeout:g} s, as the post expects: it never returns.",
    "not-run": "Not run: {output}",
}
# A hang the runner proved (runner.execute.HangProbe) says what it saw instead.
PROVEN_HANG_TEXT = "Stuck for good, as the post expects: {proof}."


def _highlight(text: str, language: str) -> str:
    return highlight(text, _INPUT_LEXERS[language], _FORMATTER).rstrip("\n")


def _input_html(step: Step, result: StepResult) -> str:
    lines = result.input.split("\n")
    out = []
    shown = prompts_for(step.language)
    prompts = [result.prompt or shown["P"]] + [shown["C"]] * (len(lines) - 1)
    for prompt, line in zip(prompts, lines, strict=True):
        out.append(
            f'<span class="kb-in"><span class="gp">{escape(prompt)}</span>'
            f'<span class="kb-cmd">{_highlight(line, step.language)}</span></span>'
        )
    return "\n".join(out)


def badges(results: list[StepResult]) -> list[tuple[str, str]]:
    """(label, css class) per distinct kernel event kind, in order of appearance."""
    seen: dict[str, str] = {}
    for result in results:
        for event in result.events:
            severity = "kb-badge-oops" if event.kind in SEVERE else "kb-badge-warn"
            seen.setdefault(event.kind, severity)
    return list(seen.items())


def _panel(steps: list[Step], results: list[StepResult]) -> list[str]:
    """One kernel's view of a block: terminal head, transcript, status, kernel log."""
    first = steps[0]
    where = WHERE_LABELS[results[0].where]
    if first.boot == "built" and results[0].kernel:
        where = f"guest VM on the kernel built above, {results[0].kernel}"
    head = [
        f'<span class="kb-session">{escape(first.session)}</span>',
        f'<span class="kb-where">{escape(where)}</span>',
    ]
    head += [
        f'<span class="kb-badge {css}">{escape(label)}</span>' for label, css in badges(results)
    ]
    total = sum(r.duration for r in results)
    head.append(f'<span class="kb-duration">{total:.2f} s</span>')
    head.append('<button class="kb-copy" type="button" hidden>Copy</button>')
    parts = [f'<div class="kb-term-head">{" ".join(head)}</div>']
    body = []
    for step, result in zip(steps, results, strict=True):
        body.append(_input_html(step, result))
        output = result.output.rstrip("\n") if result.status != "not-run" else ""
        if output:
            body.append(f'<span class="kb-out">{escape(output)}</span>')
    parts.append(f'<pre class="kb-term highlight"><code>{chr(10).join(body)}\n</code></pre>')
    for step, result in zip(steps, results, strict=True):
        template = STATUS_TEXT.get(result.status)
        if result.status == "hang" and result.hang_proof:
            text = PROVEN_HANG_TEXT.format(proof=result.hang_proof)
        elif template:
            text = template.format(timeout=step.timeout, output=result.output)
        else:
            continue
        parts.append(f'<p class="kb-status kb-status-{result.status}">{escape(text)}</p>')
    klog = [line for result in results for line in result.kernel_log]
    if klog:
        kinds = ", ".join(label for label, _ in badges(results))
        summary = f"Kernel log: {len(klog)} line{'s' if len(klog) != 1 else ''}"
        if kinds:
            summary += f" ({kinds})"
        log_html = highlight("\n".join(klog) + "\n", KernelLogLexer(), _FORMATTER)
        parts.append(
            f'<details class="kb-klog"><summary>{escape(summary)}</summary>'
            f'<pre class="highlight"><code>{log_html}</code></pre></details>'
        )
    return parts


def render_block(
    block_id: str, steps: list[Step], per_kernel: dict[str, list[StepResult]], differs: bool
) -> str:
    """A block's capture; with several kernels, one panel each and a switch.

    The switch is radio buttons and CSS (`:checked ~`): it works without
    JavaScript, and the first kernel, the default one, is shown first.
    """
    kernels = list(per_kernel)
    first = per_kernel[kernels[0]]
    classes = "kb-step kb-multi" if len(kernels) > 1 else "kb-step"
    mark = ' data-differs=""' if differs else ""
    parts = [
        f'<div class="{classes}" id="{escape(block_id)}" data-session="{escape(steps[0].session)}" '
        f'data-where="{escape(first[0].where)}"{mark}>'
    ]
    if len(kernels) == 1:
        parts += _panel(steps, first)
    else:
        for n, kernel in enumerate(kernels, 1):
            radio = f"{block_id}-k{n}"
            checked = " checked" if n == 1 else ""
            parts.append(
                f'<input type="radio" class="kb-kradio kb-k{n}" name="{escape(block_id)}-kernel" '
                f'id="{escape(radio)}"{checked}><label class="kb-klabel" for="{escape(radio)}">'
                f"Linux {escape(kernel)}</label>"
            )
        if differs:
            parts.append('<span class="kb-differs">differs across kernels</span>')
        for n, kernel in enumerate(kernels, 1):
            parts.append(f'<div class="kb-kpanel kb-k{n}" data-kernel="{escape(kernel)}">')
            parts += _panel(steps, per_kernel[kernel])
            parts.append("</div>")
    parts.append("</div>")
    return "\n".join(parts)


def block_id(first_step: Step) -> str:
    """The HTML id of a block: the differences summary links to it."""
    return f"step-{first_step.block + 1}"


def differences(steps: list[Step], per_kernel: dict[str, list[StepResult]]) -> list[dict[str, str]]:
    """The blocks whose captures differ across kernels: id and a label for each."""
    if len(per_kernel) < 2:
        return []
    found = []
    blocks: dict[int, list[int]] = {}
    for index, step in enumerate(steps):
        blocks.setdefault(step.block, []).append(index)
    for indices in blocks.values():
        block_steps = [steps[i] for i in indices]
        if differs({k: [r[i] for i in indices] for k, r in per_kernel.items()}):
            typed = "; ".join(step.input.split("\n")[0] for step in block_steps)
            label = typed if len(typed) <= 60 else typed[:59] + "…"
            session = block_steps[0].session
            found.append({"step_id": block_id(block_steps[0]), "label": f"{session}: {label}"})
    return found


def differs(per_kernel: dict[str, list[StepResult]]) -> bool:
    """Whether the kernels' outputs differ once volatile values are blanked."""
    views = {
        tuple(
            (
                r.status,
                tuple(normalize_lines(r.output.splitlines())),
                tuple(sorted({e.kind for e in r.events})),
            )
            for r in results
        )
        for results in per_kernel.values()
    }
    return len(views) > 1


def render_provenance(provenances: list[dict[str, str]], kmod: str) -> str:
    """One line: on which kernels, how, and when the captures on the page were made."""
    kernels = " and ".join(
        f"Linux {escape(p['kernel'])} (Debian {escape(p['kernel_package'])})" for p in provenances
    )
    first = provenances[0]
    dates = sorted({p["captured_at"][:10] for p in provenances})
    return (
        f"Every output on this page was captured on {kernels} "
        f"under QEMU {escape(first['qemu'])} with {escape(first['accel'].upper())}, "
        f"from kmod/ {escape(kmod[:12])}, on {escape(' and '.join(dates))}."
    )
