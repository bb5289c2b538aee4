"""A captured block rendered as a page renders it: the theme's kblog/block.html, in a
Jinja environment set up as Pelican sets up its own."""

from __future__ import annotations

from jinja2 import Environment, FileSystemLoader
from kblog_snippets import views
from pelican.settings import DEFAULT_CONFIG

from runner.config import ROOT
from runner.judge import verdict
from runner.scenario import Step, StepResult

ENV = Environment(
    loader=FileSystemLoader(str(ROOT / "theme" / "templates")),
    **DEFAULT_CONFIG["JINJA_ENVIRONMENT"],
)


def render_block(steps: list[Step], per_kernel: dict[str, list[StepResult]]) -> str:
    return ENV.get_template("kblog/block.html").render(
        block=views.block(steps, per_kernel, verdict.differs(per_kernel))
    )
