"""From fenced blocks of a post to runner Steps.

A block is executed when its attributes name a `session`:

    ```{.console session=term1}        a shell in the guest
    ```{.console session=b where=build} a shell in the build environment
    ```{.pycon session=py expect=hang timeout=3}
    ```{.console session=t boot=built}  this guest block, and the ones after it,
                                        on the kernel the build steps made
    ```{.gdb session=dbg}               gdb attached to the running guest kernel
    ```{.console session=t output=later}   its last input started, left running;
    ```{.console session=t output=collect} the same input again: its output

In a console block, lines starting with "$ " are typed; "> " lines right
after them (or any line after one ending in a backslash) continue them. In a
pycon block ">>> " starts an input and "... " continues it; in a gdb block
"(gdb) " starts one. Every other line is
the output the author expects from the input above it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import markdown
import markdown.util
from markdown.extensions.attr_list import get_attrs_and_remainder
from markdown.extensions.fenced_code import FencedBlockPreprocessor

from runner import config, memo
from runner.judge import kernel_log
from runner.judge.expect import KERNEL_PREFIX
from runner.scenario import (
    BOOTS,
    GDB_PROMPT,
    LANGUAGES,
    OUTPUTS,
    WHERES,
    Scenario,
    ScenarioError,
    Step,
)

FENCE_RE = FencedBlockPreprocessor.FENCED_BLOCK_RE
FENCE_LINE = re.compile(r"^(?:`{3,}|~{3,})")
INDENTED_SESSION_FENCE = re.compile(r"^\s+(?:`{3,}|~{3,})\s*\{[^}]*\bsession=")


class SnippetError(ValueError):
    """A block that cannot be run as written; the message starts with file:line."""


# --- the attributes of an executed block: each declared once, here -----------------

_STEP_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Step)}


def _one_of(*choices: str) -> Callable[[str, str, str], str]:
    def read(text: str, where: str, name: str) -> str:
        if text not in choices:
            raise SnippetError(f"{where}: {name}={text} is not one of {', '.join(choices)}")
        return text

    return read


def _seconds(text: str, where: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SnippetError(f"{where}: {name}={text} is not a number") from None
    if value <= 0:
        raise SnippetError(f"{where}: {name}={text} must be positive")
    return value


def _kinds(text: str, where: str, name: str) -> list[str]:
    """Kernel event kinds, checked against those the kernel-log detector knows."""
    kinds = text.split()
    unknown = [kind for kind in kinds if kind not in kernel_log.KINDS]
    if unknown:
        raise SnippetError(
            f"{where}: {name}= names unknown kernel event kinds: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(kernel_log.KINDS))})"
        )
    return kinds


def _text(text: str, where: str, name: str) -> str:
    return text


@dataclass(frozen=True)
class Attribute:
    """One attribute of an executed block: its name, what it means, how its text
    becomes a value (or a SnippetError naming file:line), and its default."""

    name: str
    meaning: str
    read: Callable[[str, str, str], object]
    default: object = None


ATTRIBUTES = {
    a.name: a
    for a in (
        Attribute(
            "session", "the terminal the block types into; blocks that name it share it", _text
        ),
        Attribute(
            "where",
            "`build`: run in the build environment instead of the guest",
            _one_of(*WHERES),
            _STEP_DEFAULTS["where"],
        ),
        Attribute(
            "expect",
            "`hang`: the block's last input never returns; the runner proves or waits it out",
            _one_of("hang"),
        ),
        Attribute(
            "timeout",
            "how many seconds each input of the block may take",
            _seconds,
            _STEP_DEFAULTS["timeout"],
        ),
        Attribute(
            "boot",
            "`built` / `stock`: from this guest block on, the kernel the build made / the run's",
            _one_of(*BOOTS),
            _STEP_DEFAULTS["boot"],
        ),
        Attribute(
            "output",
            "`later`: the block's last input is started and left running; "
            "`collect`: its first input, the same again, shows what that printed",
            _one_of(*OUTPUTS[1:]),
            _STEP_DEFAULTS["output"],
        ),
        Attribute(
            "kernel-events",
            "the kernel events the block causes; `kernel-events-LABEL=` on one kernel",
            _kinds,
        ),
    )
}
# kernel-events-LABEL: the events on the kernel labelled LABEL, where they differ.
KERNEL_EVENTS = "kernel-events"


def read_attributes(attrs: dict[str, str], where: str) -> dict[str, object]:
    """Every attribute of a block read and checked: the one place that does it.
    Missing ones take their default; kernel-events-LABEL ones are read as
    kernel-events, and kept under their own names."""
    per_kernel = {f"{KERNEL_EVENTS}-{label}" for label in config.KERNELS}
    unknown = set(attrs) - ATTRIBUTES.keys() - per_kernel
    if unknown:
        raise SnippetError(
            f"{where}: unknown attribute {', '.join(sorted(unknown))}= "
            f"(known: {', '.join(sorted(ATTRIBUTES))})"
        )
    values: dict[str, object] = {name: a.default for name, a in ATTRIBUTES.items()}
    for name, text in attrs.items():
        attribute = ATTRIBUTES[KERNEL_EVENTS if name in per_kernel else name]
        values[name] = attribute.read(text, where, name)
    return values


@dataclass
class Block:
    """One executed fenced block: where it sits in the text and its steps."""

    start: int  # character offsets of the whole fence in the document
    end: int
    line: int  # 1-based line of the opening fence
    session: str
    steps: list[Step]


def find_blocks(text: str, source: str) -> list[Block]:
    """Every fenced block of `text` that names a session, in document order."""
    blocks: list[Block] = []
    covered: list[tuple[int, int]] = []
    boot = BOOTS[0]  # a boot= holds for the guest blocks after it, until the next
    for m in FENCE_RE.finditer(text):
        covered.append((m.start(), m.end()))
        attrs_text = m.group("attrs")
        if attrs_text is None:
            continue
        line = text.count("\n", 0, m.start()) + 1
        attrs, classes = _attrs(attrs_text, f"{source}:{line}")
        if "session" not in attrs:
            ours = (ATTRIBUTES.keys() - {"session"}) & attrs.keys()
            if ours:
                raise SnippetError(
                    f"{source}:{line}: {', '.join(sorted(ours))}= needs a session= to run"
                )
            if attrs and LANGUAGES.keys() & set(classes):
                # Likely a misspelt session=: better an error than a block that never runs.
                raise SnippetError(
                    f"{source}:{line}: unknown attribute {', '.join(sorted(attrs))}= "
                    "and no session=, so this block would never run"
                )
            continue
        block_index = len(blocks)
        if attrs.get("where") != "build":  # a build block's boot= fails in parse_block
            boot = attrs.get("boot", boot)
            attrs = {**attrs, "boot": boot}
        steps = parse_block(m.group("code"), classes, attrs, source, line, block_index)
        blocks.append(Block(m.start(), m.end(), line, attrs["session"], steps))
    _check_unclosed(text, covered, source)
    return blocks


def _attrs(attrs_text: str, where: str) -> tuple[dict[str, str], list[str]]:
    pairs, rest = get_attrs_and_remainder(attrs_text)
    if rest.strip():
        raise SnippetError(f"{where}: cannot read the block attributes {{{attrs_text}}}")
    attrs: dict[str, str] = {}
    classes: list[str] = []
    for key, value in pairs:
        if key == ".":
            classes.append(value)
        elif key != "id":
            attrs[key] = value
    return attrs, classes


def _check_unclosed(text: str, covered: list[tuple[int, int]], source: str) -> None:
    """A fence line outside every matched block opens a block that never closes; an
    indented one (in a list) would be left to Markdown as text, never run."""
    offset, spans = 0, iter(sorted(covered))
    span = next(spans, None)
    for number, line in enumerate(text.split("\n"), 1):
        # Blocks do not overlap and lines come in order: one pass over both.
        while span is not None and span[1] <= offset:
            span = next(spans, None)
        inside = span is not None and span[0] <= offset
        if not inside and FENCE_LINE.match(line):
            raise SnippetError(f"{source}:{number}: this code fence is never closed")
        if not inside and INDENTED_SESSION_FENCE.match(line):
            raise SnippetError(
                f"{source}:{number}: an executed block must start at the left margin "
                "(fenced code inside a list item is not run)"
            )
        offset += len(line) + 1


def parse_block(
    code: str, classes: list[str], attrs: dict[str, str], source: str, line: int, block: int
) -> list[Step]:
    where_ = f"{source}:{line}"
    values = read_attributes(attrs, where_)
    languages = [c for c in classes if c in LANGUAGES]
    if len(languages) != 1:
        raise SnippetError(
            f"{where_}: an executed block needs exactly one language of "
            f"{', '.join('.' + lang for lang in LANGUAGES)}; got {classes or 'none'}"
        )
    language = languages[0]
    kernel_events = {
        ("*" if name == KERNEL_EVENTS else name.removeprefix(KERNEL_EVENTS + "-")): value
        for name, value in values.items()
        if name.startswith(KERNEL_EVENTS) and value is not None
    }
    parse = {"console": _console_steps, "pycon": _pycon_steps, "gdb": _gdb_steps}[language]
    try:
        raw_steps = parse(code.split("\n")[:-1] if code.endswith("\n") else code.split("\n"))
    except _Misplaced as exc:
        raise SnippetError(f"{source}:{line + 1 + exc.offset}: {exc.why}") from None
    if not raw_steps:
        raise SnippetError(f"{where_}: the block has no input line")
    steps = []
    for offset, lines, expected in raw_steps:
        _check_kernel_labels(expected, f"{source}:{line + 1 + offset}")
        steps.append(
            Step(
                session=attrs["session"],
                language=language,
                input="\n".join(lines),
                expected=expected,
                where=str(values["where"]),
                timeout=float(str(values["timeout"])),
                source=f"{source}:{line + 1 + offset}",
                block=block,
                kernel_events=kernel_events or None,  # type: ignore[arg-type]
                boot=str(values["boot"]),
            )
        )
    if values["expect"] == "hang":
        steps[-1].expect_hang = True
    if values["output"] == "later":
        steps[-1].output = "later"
    elif values["output"] == "collect":
        steps[0].output = "collect"
    for step in steps:
        try:
            step.validate()
        except ValueError as exc:
            raise SnippetError(str(exc)) from None
    return steps


def _check_kernel_labels(expected: list[str], where: str) -> None:
    """A mistyped [on NAME] would silently drop its line on every kernel."""
    for text in expected:
        m = KERNEL_PREFIX.match(text)
        if m and m.group(1) not in config.KERNELS:
            raise SnippetError(
                f"{where}: [on {m.group(1)}] names no configured kernel "
                f"(known: {', '.join(config.KERNELS)})"
            )


def markdown_text(raw: str) -> str:
    """A post's text as Python-Markdown's preprocessors see it (tab length 4): block
    offsets found in it are offsets in the text the Markdown extension is given."""
    text = raw.removeprefix("\ufeff")  # as Pelican reads a file
    text = text.replace(markdown.util.STX, "").replace(markdown.util.ETX, "")
    # Markdown ends the text with two newlines before it drops whitespace-only lines.
    text = text.replace("\r\n", "\n").replace("\r", "\n") + "\n\n"
    return re.sub(r"(?<=\n) +\n", "\n", text.expandtabs(4))


def scenario_of(blocks: list[Block], name: str) -> Scenario:
    """The scenario of a post's executed blocks, in order, checked as a whole."""
    scenario = Scenario(name, [s for b in blocks for s in b.steps])
    try:
        scenario.validate()
    except ScenarioError as exc:
        raise SnippetError(str(exc)) from None
    return scenario


@dataclass(frozen=True)
class Post:
    """A post read once per build: its text as Markdown sees it, its executed blocks
    (with their places in that text) and the scenario they make."""

    source: str  # its path as messages show it, e.g. content/ep2-kernel-segfaults.md
    text: str
    blocks: list[Block]
    scenario: Scenario

    @property
    def name(self) -> str:
        return self.scenario.name

    @functools.cached_property
    def model(self) -> str:
        """Its scenario as JSON, places included: what memos of its judging hold.
        (Scenario.to_json's content, without the deep copy asdict makes.)"""
        steps = [
            {f.name: getattr(s, f.name) for f in dataclasses.fields(s)} for s in self.scenario.steps
        ]
        return json.dumps({"name": self.scenario.name, "steps": steps}, sort_keys=True)

    @functools.cached_property
    def digest(self) -> str:
        """Scenario.digest, made once (every kernel's capture key holds it)."""
        return self.scenario.digest()


# A post as read, kept between builds (runner/memo.py) under its file's bytes, the
# path messages show, Python-Markdown's version (its fence and attribute parsers
# read the blocks) and this module's code with what it imports. Only posts that
# parse are kept: an error is found again, with its file:line, on every build.
PARSED = memo.Memo(
    "posts",
    "kblog.parse",
    (
        "kblog.parse",
        "runner",
        "runner.config",
        "runner.judge",
        "runner.judge.expect",
        "runner.judge.kernel_log",
        "runner.memo",
        "runner.scenario",
        "runner.sources",
    ),
)


def read_post(path: Path, source: str) -> Post:
    """The post at `path`; a SnippetError (file:line: why) if a block cannot run."""
    raw = path.read_bytes()
    at = PARSED.key([raw, source, path.stem, markdown.__version__])
    kept = PARSED.get(at)
    if isinstance(kept, dict):
        with contextlib.suppress(KeyError, TypeError, ValueError):  # another shape: read
            return _post_from(source, path.stem, kept)
    # Decoded as read_text() does (universal newlines), from the bytes the key holds.
    text = markdown_text(io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8").read())
    blocks = find_blocks(text, source)
    post = Post(source, text, blocks, scenario_of(blocks, path.stem))
    places = [[b.start, b.end, b.line, b.session, len(b.steps)] for b in blocks]
    steps = [dataclasses.asdict(step) for step in post.scenario.steps]
    PARSED.put(at, {"text": text, "blocks": places, "steps": steps, "digest": post.digest})
    return post


def _post_from(source: str, name: str, kept: dict[str, Any]) -> Post:
    """A post as PARSED kept it."""
    steps = [Step(**fields) for fields in kept["steps"]]
    blocks, first = [], 0
    for start, end, line, session, count in kept["blocks"]:
        blocks.append(Block(start, end, line, session, steps[first : first + count]))
        first += count
    if first != len(steps):
        raise ValueError("the kept blocks do not hold every step")
    post = Post(source, str(kept["text"]), blocks, Scenario(name, steps))
    post.__dict__["digest"] = str(kept["digest"])  # Post.digest, made when it was read
    return post


class _Misplaced(Exception):
    def __init__(self, offset: int, why: str) -> None:
        self.offset, self.why = offset, why


RawStep = tuple[int, list[str], list[str]]  # (line offset in block, input lines, expected)


def _console_steps(lines: list[str]) -> list[RawStep]:
    steps: list[RawStep] = []
    continuing = False
    for n, text in enumerate(lines):
        if text.startswith("$ ") and not continuing:
            steps.append((n, [text[2:]], []))
            continuing = text.endswith("\\")
        elif steps and (continuing or (text.startswith("> ") and not steps[-1][2])):
            body = text[2:] if text.startswith("> ") else text
            steps[-1][1].append(body)
            continuing = body.endswith("\\")
        elif steps:
            steps[-1][2].append(text)
        elif text.strip():
            raise _Misplaced(n, "output before any input line")
    return steps


def _pycon_steps(lines: list[str]) -> list[RawStep]:
    steps: list[RawStep] = []
    for n, text in enumerate(lines):
        if text.startswith(">>> ") or text == ">>>":
            steps.append((n, [text[4:]], []))
        elif steps and not steps[-1][2] and text.startswith("... "):
            # Only "... " continues: "...done" is output (an inline wildcard).
            steps[-1][1].append(text[4:])
        elif steps:
            steps[-1][2].append(text)
        elif text.strip():
            raise _Misplaced(n, "output before any input line")
    for _, inputs, _ in steps:
        # An indented last line leaves the REPL inside a block: a blank line ends it.
        if len(inputs) > 1 and inputs[-1][:1].isspace():
            inputs.append("")
    return steps


def _gdb_steps(lines: list[str]) -> list[RawStep]:
    """gdb's command line: one line per command (gdb continues none of ours)."""
    steps: list[RawStep] = []
    for n, text in enumerate(lines):
        if text.startswith(GDB_PROMPT) or text == GDB_PROMPT.rstrip():
            steps.append((n, [text[len(GDB_PROMPT) :]], []))
        elif steps:
            steps[-1][2].append(text)
        elif text.strip():
            raise _Misplaced(n, f"output before any input line (gdb inputs start {GDB_PROMPT!r})")
    return steps
