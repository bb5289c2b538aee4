"""Build the site all or nothing: a failed build leaves output/ and snippets/ as they were.

Each post is read once and its captures found, made and judged by the capture
service (kblog.captures) before Pelican starts; the build's plugin object holds
them for the pages. Pelican logs a post that fails to read and carries on; here
any error fails the build, the new site is built beside the old one and swapped in
by renames, and new captures are written only once everything else has succeeded.
"""

from __future__ import annotations

import errno
import logging
import shutil
import sys
import tempfile
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kblog_snippets.plugin import Settings, SnippetsPlugin, check_player, read_posts
from pelican import Pelican
from pelican.settings import read_settings

from kblog import lock
from kblog.captures import Captured, CellOutcome, capture
from kblog.parse import SnippetError


class BuildError(RuntimeError):
    """The site did not build; the message lists every error, each with its file."""

    def __init__(self, message: str, report: BuildReport | None = None) -> None:
        super().__init__(message)
        self.report = report


class ErrorCollector(logging.Handler):
    """Every ERROR record logged while attached, with the exception Pelican swallowed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        # Pelican logs a failed post with logger.exception but without the exception
        # (unless DEBUG): emit() still runs inside that except block, so ask for it.
        exc = record.exc_info[1] if record.exc_info else sys.exc_info()[1]
        if exc is not None:
            message = f"{message}: {exc}" if str(exc) not in message else message
        self.messages.append(message)


@dataclass
class BuildReport:
    output: Path
    captures_written: list[Path] = field(default_factory=list)
    vm_runs: int = 0
    outcomes: list[CellOutcome] = field(default_factory=list)


def _reset_sitemap_plugin() -> None:
    """Start pelican-sitemap afresh, as a new process would.

    It keeps its page queue in one module-level generator that only a build
    reaching `finalized` resets; after a build that stopped on a content error,
    every later build in the same process (tests, a long-lived caller) would
    silently get no sitemap. Re-running its constructor clears that state.
    """
    from pelican.plugins.sitemap import generator

    generator.__init__()


def capture_site(
    conf: dict[str, Any],
    *,
    mode: str | None = None,
    cells: Collection[tuple[str, str]] | None = None,
) -> tuple[Captured, dict[str, str]]:
    """Every post of the site whose settings are `conf`, read once, and its captures:
    the one call the site build and `invoke verify` make. `mode` overrides the
    settings' (and $KBLOG_EXECUTE's); `cells`, (post name, kernel label) pairs,
    restricts the runs to those. Also returns the posts that did not parse."""
    settings = Settings.read(conf)
    request = replace(
        settings.request(),
        mode=mode or settings.mode,
        cells=frozenset(cells) if cells is not None else None,
    )
    posts, broken = read_posts(settings)
    return capture(posts, request), broken


def build_site(
    settings: Path,
    output: Path,
    overrides: dict[str, Any] | None = None,
    *,
    mode: str | None = None,
    write_captures: bool = True,
) -> BuildReport:
    """Build with `settings` into `output`, atomically; raise BuildError on any error.

    `mode` overrides KBLOG_EXECUTE ("always" re-runs every post); with
    `write_captures` False new captures are not kept (a dry run).
    """
    output = output.resolve()
    collector = ErrorCollector()
    root_logger = logging.getLogger()
    root_logger.addHandler(collector)
    plugin: SnippetsPlugin | None = None
    staging: Path | None = None
    try:
        conf = read_settings(
            str(settings), override={"OUTPUT_PATH": str(output), **(overrides or {})}
        )
        root = Settings.read(conf).root
        try:
            check_player()  # before minutes of runs, not after them
        except SnippetError as exc:
            raise BuildError(str(exc)) from None
        # One writer of snippets/ and output/ at a time (kblog/lock.py).
        with lock.checkout_lock(root, f"a site build into {output}"):
            staging = _staging(output)
            conf["OUTPUT_PATH"] = str(staging)
            captured, broken = capture_site(conf, mode=mode)
            report = BuildReport(output, [], captured.vm_runs, captured.outcomes)
            plugin = SnippetsPlugin(captured, broken)
            # The plugin of this build holds its captures: Pelican takes plugin objects.
            conf["PLUGINS"] = [plugin if p == "kblog_snippets" else p for p in conf["PLUGINS"]]
            _reset_sitemap_plugin()
            try:
                Pelican(conf).run()
            except OSError as exc:  # a full disk: where it wrote, not a traceback
                where = f"writing the site into {staging}"
                collector.messages.append(_os_error(exc, where))
            except Exception as exc:  # a plugin's check failed the whole run
                collector.messages.append(str(exc))
            # A post Pelican did not read (a draft's status, a path it ignores) fails
            # the build too, with its own message, never by a refused commit.
            unread = [*broken.values(), *captured.errors]
            collector.messages += [m for m in unread if not any(m in c for c in collector.messages)]
            if collector.messages:
                raise BuildError("\n\n".join(dict.fromkeys(collector.messages)), report)
            report.captures_written = captured.commit() if write_captures else []
            _swap(staging, output)
    except lock.LockError as exc:
        raise BuildError(str(exc)) from None
    except OSError as exc:  # the staging dir, the captures or the swap
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise BuildError(_os_error(exc, f"building {output}")) from None
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        root_logger.removeHandler(collector)
        if plugin is not None:
            plugin.disconnect()
    return report


def _os_error(exc: OSError, where: str) -> str:
    """One line for a failed write: the file (else `where`) and why, e.g. a full disk."""
    name = exc.filename if exc.filename is not None else where
    why = exc.strerror or str(exc)
    full = " (the disk is full)" if exc.errno == errno.ENOSPC else ""
    return f"{name}: {why}{full}"


def _staging(output: Path) -> Path:
    """A new directory beside `output` to build into; staging dirs a killed build left
    are removed first (only with the lock held: a live build's is its own)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    for left in output.parent.glob(f".{output.name}.new-*"):
        shutil.rmtree(left, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.new-", dir=output.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the site from a web server
    return staging


def _swap(new: Path, output: Path) -> None:
    """Put `new` where `output` is, with the old site gone only once the new one is in."""
    old = output.with_name(f".{output.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if output.exists():
        output.rename(old)
    new.rename(output)
    shutil.rmtree(old, ignore_errors=True)
