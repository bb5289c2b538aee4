"""The theme's kblog/ templates, compiled once and kept between builds.

Pelican makes a new Jinja environment for every build, and each compiles every
template it renders again: for kblog/block.html that was about 8 ms of a warm
build, a cost plain Pelican does not have. Jinja's bytecode cache keeps the
compiled code under the template's name and file, and drops it when the
template's source, Jinja's version or Python's changes. Its key does not hold the
environment's options that shape the compiled code (delimiters, whitespace
control, autoescape, extensions): the key here adds them. Filters, tests and
globals are looked up when a template renders, so they stay live. Only kblog/
templates are kept; Pelican's own are compiled as a plain Pelican compiles them.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

from jinja2 import Environment
from jinja2.bccache import Bucket, FileSystemBytecodeCache

from runner import config

PREFIX = "kblog/"


def options(env: Environment) -> str:
    """The environment's settings that its compiled templates depend on."""
    autoescape = env.autoescape
    shown: Any = autoescape if isinstance(autoescape, bool) else autoescape.__qualname__
    return repr(
        [
            env.block_start_string,
            env.block_end_string,
            env.variable_start_string,
            env.variable_end_string,
            env.comment_start_string,
            env.comment_end_string,
            env.line_statement_prefix,
            env.line_comment_prefix,
            env.trim_blocks,
            env.lstrip_blocks,
            env.newline_sequence,
            env.keep_trailing_newline,
            env.optimized,
            env.is_async,
            env.finalize is not None,
            shown,
            sorted(env.extensions),
        ]
    )


class OwnTemplates(FileSystemBytecodeCache):
    """Jinja's file bytecode cache for the kblog/ templates only."""

    def __init__(self, env: Environment) -> None:
        directory = config.cache_dir() / "jinja"
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__(str(directory))
        self.options = hashlib.sha256(options(env).encode()).hexdigest()[:16]

    def get_cache_key(self, name: str, filename: str | None = None) -> str:
        return f"{super().get_cache_key(name, filename)}-{self.options}"

    def get_bucket(
        self, environment: Environment, name: str, filename: str | None, source: str
    ) -> Bucket:
        if name.startswith(PREFIX):
            return super().get_bucket(environment, name, filename, source)
        return Bucket(environment, "", "")  # not ours: never read, never kept

    def set_bucket(self, bucket: Bucket) -> None:
        if bucket.key:
            with contextlib.suppress(OSError):  # a cache we cannot write only costs time
                super().set_bucket(bucket)


def keep(env: Environment) -> None:
    """Keep `env`'s kblog/ templates compiled between builds, unless the site set a
    bytecode cache of its own (JINJA_ENVIRONMENT)."""
    if env.bytecode_cache is None:
        with contextlib.suppress(OSError):  # no cache directory: compiled every build
            env.bytecode_cache = OwnTemplates(env)
