"""HTML for executed blocks: the captured terminal, its kernel log and badges.

What the reader sees is always the capture; the author's expected output is only
used to check it.
"""

from __future__ import annotations

from html import escape

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import BashLexer, KernelLogLexer, PythonLexer

from runner.kernel_log import SEVERE
from runner.scenario import Step, StepResult

_FORMATTER = HtmlFormatter(nowrap=True)
_INPUT_LEXERS = {"console": BashLexer(), "pycon": PythonLexer()}
_CONTINUATION = {"console": "> ", "pycon": "... "}
WHERE_LABELS = {"guest": "guest VM", "build": "build environment"}
STATUS_TEXT = {
    "hang": "Still running after {timeout:g} s, as the post expects: it never returns.",
    "not-run": "Not run: {output}",
}


def _highlight(text: str, language: str) -> str:
    return highlight(text, _INPUT_LEXERS[language], _FORMATTER).rstrip("\n")


def _input_html(step: Step, result: StepResult) -> str:
    lines = result.input.split("\n")
    if step.language == "pycon" and len(lines) > 1 and lines[-1] == "":
        lines = lines[:-1] + [""]
    out = []
    prompts = [result.prompt or "$ "] + [_CONTINUATION[step.language]] * (len(lines) - 1)
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


def render_block(block_id: str, steps: list[Step], results: list[StepResult]) -> str:
    first = steps[0]
    parts = [
        f'<div class="kb-step" id="{escape(block_id)}" data-session="{escape(first.session)}" '
        f'data-where="{escape(results[0].where)}">'
    ]
    head = [
        f'<span class="kb-session">{escape(first.session)}</span>',
        f'<span class="kb-where">{WHERE_LABELS[results[0].where]}</span>',
    ]
    head += [f'<span class="kb-badge {css}">{escape(label)}</span>' for label, css in badges(results)]
    total = sum(r.duration for r in results)
    head.append(f'<span class="kb-duration">{total:.2f} s</span>')
    head.append('<button class="kb-copy" type="button" hidden>Copy</button>')
    parts.append(f'<div class="kb-term-head">{" ".join(head)}</div>')
    body = []
    for step, result in zip(steps, results, strict=True):
        body.append(_input_html(step, result))
        output = result.output.rstrip("\n") if result.status != "not-run" else ""
        if output:
            body.append(f'<span class="kb-out">{escape(output)}</span>')
    parts.append(f'<pre class="kb-term highlight"><code>{chr(10).join(body)}\n</code></pre>')
    for step, result in zip(steps, results, strict=True):
        template = STATUS_TEXT.get(result.status)
        if template:
            text = template.format(timeout=step.timeout, output=result.output)
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
    parts.append("</div>")
    return "\n".join(parts)


def render_provenance(provenance: dict[str, str]) -> str:
    """One line: where and when the captures on the page were made."""
    return (
        f"Captured on Linux {escape(provenance['kernel'])} "
        f"(Debian package {escape(provenance['kernel_package'])}) "
        f"under QEMU {escape(provenance['qemu'])} with {escape(provenance['accel'].upper())}, "
        f"kmod/ {escape(provenance['kmod'][:12])}, on {escape(provenance['captured_at'][:10])}."
    )
