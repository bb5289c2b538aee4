"""Build the site, or a tiny synthetic one, with Pelican in-process (helpers for the tests)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pelican import Pelican
from pelican.settings import read_settings

from kblog.build import ErrorCollector

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_FILE = ROOT / "pelicanconf.py"
PLUGINS_DIR = ROOT / "plugins"

# write(name, *header_lines, body=..., raw=...) -> the written path
Post = Callable[..., Path]

if str(PLUGINS_DIR) not in sys.path:
    # The same module object Pelican loads, so ContentError is one class.
    sys.path.insert(0, str(PLUGINS_DIR))


def plugin_available(name: str, paths: Iterable[str]) -> bool:
    """True when Pelican would find plugin ``name`` on ``paths`` or on sys.path."""
    if importlib.machinery.PathFinder.find_spec(name, list(paths)) is not None:
        return True
    return importlib.util.find_spec(name) is not None


def site_settings(**overrides: Any) -> dict[str, Any]:
    """pelicanconf.py with ``overrides``, keeping only the plugins that exist here.

    The site names every plugin it is meant to run with; one that is not in the
    tree yet is left out instead of letting Pelican log an error and go on.
    """
    base = read_settings(str(SETTINGS_FILE))
    plugins = overrides.pop("PLUGINS", base["PLUGINS"])
    paths = base["PLUGIN_PATHS"]
    overrides["PLUGINS"] = [p for p in plugins if plugin_available(p, paths)]
    overrides.setdefault("CACHE_CONTENT", False)
    overrides.setdefault("LOAD_CONTENT_CACHE", False)
    return read_settings(str(SETTINGS_FILE), override=overrides)


class BuildLoggedErrors(AssertionError):
    """Pelican finished but logged errors (it skips a post it cannot read)."""


def build(**overrides: Any) -> Path:
    """Build with pelicanconf.py plus ``overrides``; return the output directory.

    Posts are never run in a VM from here: their captures in snippets/ must be
    fresh (``invoke build`` refreshes them). KBLOG_EXECUTE in the environment
    still wins, for whoever wants the tests to run the posts.
    """
    overrides.setdefault("KBLOG_EXECUTE", "never")
    settings = site_settings(**overrides)
    errors = ErrorCollector()
    logging.getLogger().addHandler(errors)
    try:
        Pelican(settings).run()
    finally:
        logging.getLogger().removeHandler(errors)
    if errors.messages:
        raise BuildLoggedErrors("the build logged errors:\n" + "\n".join(errors.messages))
    return Path(settings["OUTPUT_PATH"])


def build_tiny(content: Path, **overrides: Any) -> Path:
    """Build a synthetic content directory with only the series plugin."""
    overrides.setdefault("PLUGINS", ["kblog_series"])
    return build(PATH=str(content), OUTPUT_PATH=str(content.parent / "output"), **overrides)
