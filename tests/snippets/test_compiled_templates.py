"""The kblog/ templates kept compiled between builds (plugins/kblog_snippets/compiled.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2 import Environment, FileSystemLoader
from kblog_snippets import compiled

from runner import config


def _render(templates: Path, name: str, **options: bool) -> str:
    env = Environment(loader=FileSystemLoader(str(templates)), **options)
    compiled.keep(env)  # a new environment per build, as Pelican makes them
    return env.get_template(name).render(who="reader")


def test_kept_templates_follow_their_source_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KBLOG_CACHE", str(tmp_path / "cache"))
    templates = tmp_path / "templates"
    (templates / "kblog").mkdir(parents=True)
    block = templates / "kblog" / "block.html"
    block.write_text("{% if who %}\nhello {{ who }}\n{% endif %}\n")
    assert _render(templates, "kblog/block.html") == "\nhello reader\n"
    kept = list((config.cache_dir() / "jinja").iterdir())
    assert len(kept) == 1
    assert _render(templates, "kblog/block.html") == "\nhello reader\n"  # from the cache
    # Whitespace control shapes the compiled code: another key, not the kept code.
    assert _render(templates, "kblog/block.html", trim_blocks=True) == "hello reader\n"
    block.write_text("bye {{ who }}")
    assert _render(templates, "kblog/block.html") == "bye reader"
    # A template of the theme's own is compiled as Pelican compiles it, never kept.
    (templates / "article.html").write_text("{{ who }}")
    assert _render(templates, "article.html") == "reader"
    assert len(list((config.cache_dir() / "jinja").iterdir())) == 2
