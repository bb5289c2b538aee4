"""Pelican glue: the reader that knows which post is converting, and settings."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pelican import signals
from pelican.readers import MarkdownReader

from runner import config

from . import bundle
from .captures import Captures
from .extension import CURRENT_SOURCE, SnippetsExtension

log = logging.getLogger(__name__)


class ExecutingMarkdownReader(MarkdownReader):
    """The Markdown reader, plus the post's path for messages and its provenance."""

    def read(self, source_path: str) -> tuple[str, dict[str, Any]]:
        root = Path(self.settings.get("PATH", ".")).resolve().parent
        try:
            shown = str(Path(source_path).resolve().relative_to(root))
        except ValueError:
            shown = source_path
        token = CURRENT_SOURCE.set(shown)
        try:
            content, metadata = super().read(source_path)
        finally:
            CURRENT_SOURCE.reset(token)
        for ext in self._md.registeredExtensions:
            if not isinstance(ext, SnippetsExtension):
                continue
            document = ext.documents.pop(shown, None)
            if document:
                metadata["kblog_provenance"] = document["provenance"]
                metadata["kblog_differences"] = document["differences"]
                name = document["bundle"]
                url = f"{self.settings.get('SITEURL', '')}/{bundle.BUNDLES}/{name}.tar.gz"
                metadata["kblog_reproduce"] = {
                    "commands": bundle.commands(name, url),
                    "bundle_url": url,
                }
        return content, metadata


def captures_for(settings: dict[str, Any]) -> Captures:
    provided = settings.get("KBLOG_CAPTURES")
    if provided is not None:
        return provided
    root = Path(settings.get("PATH", "content")).resolve().parent
    return Captures(
        snippets=root / settings.get("KBLOG_SNIPPETS_DIR", "snippets"),
        kmod=root / "kmod",
        mode=settings.get("KBLOG_EXECUTE", "auto"),
        kernels=tuple(settings.get("KBLOG_KERNELS", (config.DEFAULT_KERNEL,))),
    )


def initialized(pelican: Any) -> None:
    settings = pelican.settings
    captures = captures_for(settings)
    settings["KBLOG_CAPTURES"] = captures
    markdown = settings.setdefault("MARKDOWN", {})
    markdown.setdefault("extensions", []).append(SnippetsExtension(captures=captures))


def readers_init(readers: Any) -> None:
    for ext in ExecutingMarkdownReader.file_extensions:
        readers.reader_classes[ext] = ExecutingMarkdownReader


def write_bundles(captures: Captures, output: Path) -> None:
    """Each executed post's reproduction bundle, under output/bundles/."""
    dest = output / bundle.BUNDLES
    dest.mkdir(parents=True, exist_ok=True)
    runner_dir = Path(config.__file__).resolve().parent
    for name, (scenario, text) in sorted(captures.published.items()):
        data = bundle.make(name, scenario, text, captures.kmod, runner_dir)
        (dest / f"{name}.tar.gz").write_bytes(data)


def finalized(pelican: Any) -> None:
    """Write the bundles; with plain `pelican`, also keep new captures if no post failed."""
    captures: Captures = pelican.settings["KBLOG_CAPTURES"]
    write_bundles(captures, Path(pelican.settings["OUTPUT_PATH"]))
    if pelican.settings.get("_KBLOG_MANAGED"):
        return  # kblog_build writes captures once the whole build has succeeded
    if not captures.failed:
        for path in captures.commit():
            log.info("wrote %s", path)


def register() -> None:
    signals.initialized.connect(initialized)
    signals.readers_init.connect(readers_init)
    signals.finalized.connect(finalized)
