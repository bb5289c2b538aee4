"""Pelican glue: settings read in one place, results made before any post is read.

- `initialized`: read the settings, scan every post for executed blocks, and
  have Captures make or find each post's results (VMs run here, in parallel).
- The Markdown reader tells the extension which file it converts, for messages.
- `content_object_init`: the page's provenance, differences and reproduce box.
- `finalized`: the reproduce bundles, and new captures for a plain `pelican` run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from pelican import signals
from pelican.readers import MarkdownReader

from kblog.captures import Captures
from kblog.parse import SnippetError, scenario_from_text
from runner import config

from . import bundle
from .extension import SnippetsExtension

log = logging.getLogger(__name__)


def captures_for(settings: dict[str, Any], mode: str | None = None) -> Captures:
    """The Captures of a build: `mode` if given, else $KBLOG_EXECUTE, else the setting."""
    provided = settings.get("KBLOG_CAPTURES")
    if provided is not None:
        return provided
    root = content_root(settings)
    return Captures(
        snippets=root / settings.get("KBLOG_SNIPPETS_DIR", "snippets"),
        kmod=root / "kmod",
        mode=mode or os.environ.get("KBLOG_EXECUTE") or settings.get("KBLOG_EXECUTE", "auto"),
        kernels=tuple(settings.get("KBLOG_KERNELS", (config.DEFAULT_KERNEL,))),
    )


def content_root(settings: dict[str, Any]) -> Path:
    """The directory that holds content/: post paths in messages are relative to it."""
    return Path(settings.get("PATH", "content")).resolve().parent


def shown_path(settings: dict[str, Any], source_path: str) -> str:
    try:
        return str(Path(source_path).resolve().relative_to(content_root(settings)))
    except ValueError:
        return source_path


def posts(settings: dict[str, Any]) -> dict[str, Any]:
    """Every post with executed blocks: its shown path and scenario, read as the
    Markdown extension reads it. A post that does not parse is left out here: its
    reader reports the error, with its line."""
    content = Path(settings.get("PATH", "content")).resolve()
    found = {}
    for path in sorted(content.rglob("*.md")):
        source = shown_path(settings, str(path))
        try:
            scenario = scenario_from_text(path.read_text(), source, path.stem)
        except (SnippetError, OSError):
            continue
        if scenario.steps:
            found[source] = scenario
    return found


class SourceNamingMarkdownReader(MarkdownReader):
    """Pelican's Markdown reader, telling our extension which post it converts."""

    def read(self, source_path: str) -> tuple[str, dict[str, Any]]:
        for ext in self.settings["MARKDOWN"].get("extensions", []):
            if isinstance(ext, SnippetsExtension):
                ext.setConfig("source", shown_path(self.settings, source_path))
        return super().read(source_path)


def initialized(pelican: Any) -> None:
    settings = pelican.settings
    captures = captures_for(settings)
    settings["KBLOG_CAPTURES"] = captures
    markdown = settings.setdefault("MARKDOWN", {})
    markdown.setdefault("extensions", []).append(SnippetsExtension(results=captures.lookup))
    captures.prepare(posts(settings))


def readers_init(readers: Any) -> None:
    for ext in SourceNamingMarkdownReader.file_extensions:
        readers.reader_classes[ext] = SourceNamingMarkdownReader


def content_object_init(content: Any) -> None:
    """Give an executed post what its template shows beside the terminals."""
    if not content.source_path:
        return
    captures: Captures | None = content.settings.get("KBLOG_CAPTURES")
    document = (
        captures.document(shown_path(content.settings, content.source_path)) if captures else None
    )
    if document is None:
        return
    name = document["bundle"]
    url = f"{content.settings.get('SITEURL', '')}/{bundle.BUNDLES}/{name}.tar.gz"
    content.kblog_provenance = document["provenance"]
    content.kblog_differences = document["differences"]
    content.kblog_reproduce = {"commands": bundle.commands(name, url), "bundle_url": url}


def write_bundles(captures: Captures, output: Path) -> None:
    """Each executed post's reproduction bundle, under output/bundles/."""
    dest = output / bundle.BUNDLES
    dest.mkdir(parents=True, exist_ok=True)
    runner_dir = Path(config.__file__).resolve().parent
    for name, (scenario, text) in sorted(captures.published.items()):
        kernel_dir = config.kernel_dir_for(captures.kmod)
        data = bundle.make(name, scenario, text, captures.kmod, kernel_dir, runner_dir)
        (dest / f"{name}.tar.gz").write_bytes(data)


def finalized(pelican: Any) -> None:
    """Write the bundles; with plain `pelican`, also keep new captures if no post failed."""
    captures: Captures = pelican.settings["KBLOG_CAPTURES"]
    write_bundles(captures, Path(pelican.settings["OUTPUT_PATH"]))
    if pelican.settings.get("KBLOG_BUILD_MANAGED"):
        return  # kblog.build writes captures once the whole build has succeeded
    if not captures.failed:
        for path in captures.commit():
            log.info("wrote %s", path)


def register() -> None:
    signals.initialized.connect(initialized)
    signals.readers_init.connect(readers_init)
    signals.content_object_init.connect(content_object_init)
    signals.finalized.connect(finalized)
