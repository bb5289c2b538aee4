"""Pelican glue: a post's executed blocks shown as what the sandbox captured.

One SnippetsPlugin serves one build. The build service (kblog.build) makes one
with the posts' captures already in hand; a plain `pelican` run gets the module's
own, which asks the capture service itself at `initialized` and writes the new
captures at `finalized` if nothing failed. Each receiver answers only for its own
build (its settings), so several builds in one process never mix.

- `initialized`: settings read in one place; the Markdown extension added.
- `generator_init`: the theme's Jinja environment, which renders every block.
- `readers_init`: the Markdown reader tells the extension which post it converts.
- `content_object_init`: the page's provenance, differences and reproduce box.
- `article_generator_finalized`: the execution report's data (kblog/report.py).
- `finalized`: the reproduce bundles, the replays and the player they need.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pelican import signals
from pelican.readers import MarkdownReader
from pygments import __version__ as pygments_version

from kblog import captures as capture_service
from kblog import report
from kblog.parse import Post, SnippetError, read_post
from runner import config, memo

from . import bundle, compiled, replay, views
from .extension import SnippetsExtension

log = logging.getLogger(__name__)

BLOCK_TEMPLATE = "kblog/block.html"
# The replay's player, as `npm ci` installs it from package.json (never kept in git);
# the build copies these into the site's theme files.
PLAYER = Path(__file__).resolve().parents[2] / "node_modules" / "asciinema-player"
PLAYER_FILES = ("dist/bundle/asciinema-player.min.js", "dist/bundle/asciinema-player.css")
PLAYER_STATIC = "asciinema-player"  # under the theme's static directory of the output

# What views.py makes of a post's blocks, kept between builds (runner/memo.py): with
# Pygments' lexers it is most of what a page costs. The key holds the captures file
# as published, the post's scenario, the kernels in order, the blocks that differ,
# Pygments' version (it writes the highlighted HTML), and views' code and the judge's
# (the judge derives the events and matches views shows).
VIEWS = memo.Memo(
    "views", "kblog_snippets.views", (*capture_service.JUDGE_CODE, "kblog_snippets.views")
)
# What replay.py makes of a post's recordings (its .cast files and script): the
# events of a kernel build run to thousands. Keyed by the captures file as published,
# the post's name and the kernels shown in order, and replay's code and the judge's
# (which reads the captures into results).
REPLAYS = memo.Memo(
    "replays", "kblog_snippets.replay", (*capture_service.JUDGE_CODE, "kblog_snippets.replay")
)


@dataclass(frozen=True)
class Settings:
    """The plugin's settings, read in one place (see the package's docstring)."""

    root: Path  # the directory that holds content/: post paths are shown relative to it
    content: Path
    snippets: Path
    kmod: Path
    mode: str
    kernels: tuple[str, ...]
    ignored: tuple[str, ...]  # Pelican's IGNORE_FILES: no post of ours either
    repository_url: str  # where a repository file's path is appended to link it; "" for none

    @classmethod
    def read(cls, settings: dict[str, Any]) -> Settings:
        content = Path(settings.get("PATH", "content")).resolve()
        root = content.parent
        return cls(
            root=root,
            content=content,
            snippets=root / settings.get("KBLOG_SNIPPETS_DIR", "snippets"),
            kmod=root / "kmod",
            mode=os.environ.get("KBLOG_EXECUTE") or settings.get("KBLOG_EXECUTE", "auto"),
            kernels=tuple(settings.get("KBLOG_KERNELS") or config.KERNELS),
            ignored=tuple(settings.get("IGNORE_FILES", ())),
            repository_url=str(settings.get("KBLOG_REPOSITORY_URL") or "").rstrip("/"),
        )

    def shown(self, source_path: str | Path) -> str:
        try:
            return str(Path(source_path).resolve().relative_to(self.root))
        except ValueError:
            return str(source_path)

    def request(self) -> capture_service.Request:
        return capture_service.Request(
            snippets=self.snippets, kmod=self.kmod, mode=self.mode, kernels=self.kernels
        )


def read_posts(settings: Settings) -> tuple[list[Post], dict[str, str]]:
    """Every post with executed blocks, read once; and the posts that do not parse or
    cannot be read, with their error (file:line: why). Pelican's Markdown files only:
    its extensions, and none it ignores (hidden ones, an editor's lock file)."""
    posts, broken = [], {}
    found = {
        p for ext in MarkdownReader.file_extensions for p in settings.content.rglob(f"*.{ext}")
    }
    for path in sorted(found):
        relative = path.relative_to(settings.content)
        if any(part.startswith(".") for part in relative.parts) or any(
            relative.match(pattern) for pattern in settings.ignored
        ):
            continue
        source = settings.shown(path)
        try:
            post = read_post(path, source)
        except SnippetError as exc:
            broken[source] = str(exc)
            continue
        except (OSError, UnicodeDecodeError) as exc:
            broken[source] = f"{source}: cannot be read: {exc}"
            continue
        if post.scenario.steps:
            posts.append(post)
    return posts, broken


class SnippetsPlugin:
    """The plugin for one build; `captured` is None for a plain `pelican` run."""

    def __init__(
        self,
        captured: capture_service.Captured | None = None,
        broken: dict[str, str] | None = None,
    ) -> None:
        self.given = captured
        self.given_broken = broken or {}  # the posts the build could not read
        self.captured: capture_service.Captured | None = None
        self.broken: dict[str, str] = {}
        self.settings: dict[str, Any] | None = None
        self.config: Settings | None = None
        self.env: Any = None

    def register(self) -> None:
        signals.initialized.connect(self.initialized)
        signals.generator_init.connect(self.generator_init)
        signals.readers_init.connect(self.readers_init)
        signals.content_object_init.connect(self.content_object_init)
        signals.article_generator_finalized.connect(self.article_generator_finalized)
        signals.finalized.connect(self.finalized)

    def disconnect(self) -> None:
        for signal, receiver in (
            (signals.initialized, self.initialized),
            (signals.generator_init, self.generator_init),
            (signals.readers_init, self.readers_init),
            (signals.content_object_init, self.content_object_init),
            (signals.article_generator_finalized, self.article_generator_finalized),
            (signals.finalized, self.finalized),
        ):
            signal.disconnect(receiver)

    def _mine(self, settings: dict[str, Any]) -> bool:
        return self.settings is not None and settings is self.settings

    def initialized(self, pelican: Any) -> None:
        if not any(p is self or getattr(p, "PLUGIN", None) is self for p in pelican.plugins):
            return  # another build's plugin
        self.settings = pelican.settings
        self.config = Settings.read(pelican.settings)
        self.env = None
        if self.given is not None:
            self.captured, self.broken = self.given, dict(self.given_broken)
        else:
            posts, self.broken = read_posts(self.config)
            if posts:
                check_player()  # before minutes of runs, not after them
            self.captured = capture_service.capture(posts, self.config.request())
        markdown = pelican.settings.setdefault("MARKDOWN", {})
        markdown.setdefault("extensions", []).append(SnippetsExtension(page=self))

    def generator_init(self, generator: Any) -> None:
        if self._mine(generator.settings) and self.env is None:
            self.env = generator.env
            compiled.keep(self.env)  # block.html compiled once, not every build

    def readers_init(self, readers: Any) -> None:
        if self._mine(readers.settings):
            for ext in SourceNamingMarkdownReader.file_extensions:
                readers.reader_classes[ext] = SourceNamingMarkdownReader

    def page(self, source: str) -> tuple[Post, list[dict[str, Any]]] | None:
        """The post at `source` and what the template shows of each of its blocks ([]
        when it has no results; None: no executed blocks); raises its SnippetError if
        it failed."""
        if source in self.broken:
            raise SnippetError(self.broken[source])
        assert self.captured is not None
        found = self.captured.posts.get(source)
        if found is None:
            return None
        if found.error:
            raise SnippetError(found.error)
        return found.post, shown_blocks(found)

    def render_block(self, block: dict[str, Any]) -> str:
        if self.env is None:
            raise SnippetError("no theme environment to render executed blocks with")
        return str(self.env.get_template(BLOCK_TEMPLATE).render(block=block))

    def content_object_init(self, content: Any) -> None:
        """Give an executed post what its template shows beside the terminals."""
        if not content.source_path or not self._mine(content.settings):
            return
        assert self.config is not None and self.captured is not None
        found = self.captured.posts.get(self.config.shown(content.source_path))
        if found is None or found.error or not found.results:
            return  # not executed, failed (its reader said so), or outside a share
        per_kernel = found.results
        provenances = [vars(r.provenance) for r in per_kernel.values()]
        name = found.post.name
        url = f"{content.settings.get('SITEURL', '')}/{bundle.BUNDLES}/{name}.tar.gz"
        content.kblog_provenance = views.provenance(
            provenances, self.captured.kmod_digest, self.config.repository_url
        )
        content.kblog_differences = views.differences(found.post.scenario.steps, found.differs)
        content.kblog_reproduce = {"commands": bundle.commands(name, url), "bundle_url": url}
        content.kblog_replay = replay.page(name, per_kernel, content.settings.get("SITEURL", ""))

    def article_generator_finalized(self, generator: Any) -> None:
        """The report page's data, for the direct template "report" (pelicanconf.py)."""
        if not self._mine(generator.settings):
            return
        assert self.captured is not None
        generator.context["kblog_report"] = report.view(report.rows(self.captured))

    def finalized(self, pelican: Any) -> None:
        """Write the bundles; for a plain `pelican` run, also the new captures if no
        post failed (the build service writes them itself once everything passed)."""
        if not self._mine(pelican.settings):
            return
        assert self.captured is not None and self.config is not None
        output = Path(pelican.settings["OUTPUT_PATH"])
        write_bundles(self.captured, self.config, output)
        write_replays(self.captured, output, output / pelican.settings["THEME_STATIC_DIR"])
        if self.given is None and not self.captured.errors:
            for path in self.captured.commit():
                log.info("wrote %s", path)
        self.settings = None


def shown_blocks(found: capture_service.PostCaptures) -> list[dict[str, Any]]:
    """views.blocks of a post's captures, kept between builds (VIEWS)."""
    if not found.results:
        return []
    post, differing = found.post, sorted(found.differs)
    at = VIEWS.key([found.text, post.model, *found.results, *map(str, differing), pygments_version])
    shown = VIEWS.get(at)
    if isinstance(shown, list):
        return shown
    per_kernel = {kernel: result.steps for kernel, result in found.results.items()}
    shown = views.blocks(post.scenario.steps, per_kernel, found.differs)
    VIEWS.put(at, shown)
    return shown


class SourceNamingMarkdownReader(MarkdownReader):
    """Pelican's Markdown reader, telling our extension which post it converts."""

    def read(self, source_path: str) -> tuple[str, dict[str, Any]]:
        shown = Settings.read(self.settings).shown(source_path)
        for ext in self.settings["MARKDOWN"].get("extensions", []):
            if isinstance(ext, SnippetsExtension):
                ext.setConfig("source", shown)
        return super().read(source_path)


def write_bundles(captured: capture_service.Captured, settings: Settings, output: Path) -> None:
    """Each executed post's reproduction bundle, under output/bundles/."""
    dest = output / bundle.BUNDLES
    dest.mkdir(parents=True, exist_ok=True)
    runner_dir = Path(config.__file__).resolve().parent
    kernel_dir = config.kernel_dir_for(settings.kmod)
    trees: dict[Path, str] = {}  # each tree read once for every bundle
    for found in sorted(captured.posts.values(), key=lambda p: p.post.name):
        if found.error or not found.results:
            continue
        scenario = found.post.scenario
        data = bundle.make(
            scenario.name,
            scenario,
            found.text,
            settings.kmod,
            kernel_dir,
            runner_dir,
            trees,
            found.post.model,
        )
        (dest / f"{scenario.name}.tar.gz").write_bytes(data)


def write_replays(captured: capture_service.Captured, output: Path, static: Path) -> None:
    """Each executed post's replay files (replay.py), and the player they play in."""
    recorded = False
    for found in sorted(captured.posts.values(), key=lambda p: p.post.name):
        if found.error or not found.results:
            continue
        replay.write(output, replay_files(found))
        recorded = recorded or any(r.recordings for r in found.results.values())
    if recorded:
        copy_player(static / PLAYER_STATIC)


def replay_files(found: capture_service.PostCaptures) -> dict[str, str]:
    """replay.files of a post's captures, kept between builds (REPLAYS)."""
    name = found.post.name
    at = REPLAYS.key([found.text, name, *found.results])
    made = REPLAYS.get(at)
    if isinstance(made, dict):
        return made
    made = replay.files(name, name, found.results)
    REPLAYS.put(at, made)
    return made


def check_player() -> None:
    """The player's script and style are in node_modules/; missing, the build fails."""
    for name in PLAYER_FILES:
        source = PLAYER / name
        if not source.is_file():
            raise SnippetError(
                f"{source}: missing; the pages' replay player comes from npm: run `make html` "
                "(or `npm ci` at the top of the checkout)"
            )


def copy_player(dest: Path) -> None:
    """The player's script and style, copied into the site."""
    check_player()
    dest.mkdir(parents=True, exist_ok=True)
    for name in PLAYER_FILES:
        shutil.copyfile(PLAYER / name, dest / Path(name).name)


# The plugin of a plain `pelican` run (PLUGINS = ["kblog_snippets"]).
PLUGIN = SnippetsPlugin()


def register() -> None:
    PLUGIN.register()
