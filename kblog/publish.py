"""Publish the site: build it with publishconf.py, never starting a VM, then deploy it.

The build goes to a temporary directory and is deployed only once it is complete,
so a failed build leaves the published site as it was. The target is either a
directory that rsync mirrors the site into (local, or user@host:path), or a branch
of a git repository that ghp-import commits the site to and git pushes.

Every setting comes from the settings file (publishconf.py, which reads them from
the environment); see its docstring for the names.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pelican.settings import read_settings

from runner.judge.verdict import Outcome

from .build import BuildError, build_site

# What `invoke publish` tells an author whose captures are out of date.
REFRESH_HINT = (
    "Refresh the captures first: run `make html` (or `invoke verify --update`), "
    "review the diff under snippets/, commit it, then publish again."
)
# A complete build has these; without them nothing is deployed.
REQUIRED_FILES = ("index.html", "sitemap.xml", "robots.txt")


class PublishError(RuntimeError):
    """Nothing was deployed; the message says why."""


class PublishSettingsError(PublishError):
    """A setting is missing or wrong (one line, caught before anything is built)."""


@dataclass(frozen=True)
class Target:
    kind: str  # "rsync" or "git"
    where: str  # the rsync destination, or the git repository's URL or path
    branch: str = "gh-pages"
    cname: str = ""

    def describe(self) -> str:
        if self.kind == "git":
            return f"branch {self.branch} of {self.where}"
        return self.where


@dataclass
class Published:
    siteurl: str
    target: Target
    files: int


def site_address(value: str) -> str:
    """The site address as published, or PublishSettingsError when it is unusable."""
    if not value:
        raise PublishSettingsError(
            "no site address: set KBLOG_PUBLISH_SITEURL, e.g. https://blog.example.org"
        )
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        shown = "https://" + value.split("://", 1)[-1]
        raise PublishSettingsError(
            f"site address {value!r} needs a scheme and a host: set KBLOG_PUBLISH_SITEURL={shown}"
        )
    if parts.query or parts.fragment:
        raise PublishSettingsError(f"site address {value!r} must not have a query or fragment")
    return value.rstrip("/")


def target_from(settings: Mapping[str, Any]) -> Target:
    """The one deploy target the settings name, or PublishSettingsError."""
    rsync = settings.get("KBLOG_PUBLISH_RSYNC", "")
    git = settings.get("KBLOG_PUBLISH_GIT", "")
    cname = settings.get("KBLOG_PUBLISH_CNAME", "")
    if rsync and git:
        raise PublishSettingsError(
            "both KBLOG_PUBLISH_RSYNC and KBLOG_PUBLISH_GIT are set: choose one target"
        )
    if not rsync and not git:
        raise PublishSettingsError(
            "no publish target: set KBLOG_PUBLISH_RSYNC (a directory or user@host:path) "
            "or KBLOG_PUBLISH_GIT (a git repository)"
        )
    if rsync:
        if cname:
            raise PublishSettingsError(
                "KBLOG_PUBLISH_CNAME is for a git (GitHub Pages) target, not an rsync one"
            )
        return Target("rsync", rsync)
    branch = settings.get("KBLOG_PUBLISH_BRANCH") or "gh-pages"
    if not _valid_branch(branch):
        raise PublishSettingsError(f"KBLOG_PUBLISH_BRANCH={branch!r} is not a valid branch name")
    return Target("git", git, branch, cname)


def is_remote(where: str) -> bool:
    """True for what rsync and git treat as another host: a colon before any slash."""
    return bool(re.match(r"[^/]*:", where))


def check_target(target: Target, content: Path) -> None:
    """Fail now, before building, on a target that does not exist or cannot be written."""
    if target.kind == "git":
        _git_branch_exists(target)  # raises when it is not a reachable repository
        if not is_remote(target.where):
            _check_writable(Path(target.where), "publish repository")
        return
    if is_remote(target.where):
        # Whether it exists is all that can be known without writing there.
        try:
            _run(["rsync", "--list-only", target.where], "rsync --list-only")
        except CommandFailed as exc:
            raise PublishSettingsError(
                f"publish directory {target.where} cannot be read: {exc.reason}"
            ) from None
        return
    path = Path(target.where)
    _check_writable(path, "publish directory")
    resolved = path.resolve()
    if resolved == content or resolved in content.parents:
        # --delete would remove the sources themselves.
        raise PublishSettingsError(f"publish directory {target.where} holds the content itself")


def _check_writable(path: Path, what: str) -> None:
    if not path.exists():
        raise PublishSettingsError(f"{what} {path} does not exist (create it first)")
    if not path.is_dir():
        raise PublishSettingsError(f"{what} {path} is not a directory")
    # Try it: permission bits say nothing for root, or on a read-only file system.
    try:
        fd, probe = tempfile.mkstemp(prefix=".kblog-publish-probe-", dir=path)
    except OSError as exc:
        raise PublishSettingsError(f"{what} {path} cannot be written: {exc.strerror}") from None
    os.close(fd)
    os.unlink(probe)


def publish(
    settings: Path,
    overrides: dict[str, Any] | None = None,
    *,
    say: Callable[[str], None] = print,
) -> Published:
    """Check the settings, build into a temporary directory, deploy only a complete build."""
    conf = quiet_read_settings(settings, overrides)
    siteurl = site_address(conf.get("SITEURL", ""))
    target = target_from(conf)
    check_target(target, Path(conf["PATH"]).resolve())
    with tempfile.TemporaryDirectory(prefix="kblog-publish-") as tmp:
        site = Path(tmp) / "site"
        try:
            # The settings file decides SITEURL; overrides only ever come from tests.
            build_site(settings, site, overrides, mode="never", write_captures=False)
        except BuildError as exc:
            outcomes = exc.report.outcomes if exc.report else []
            stale = [o.detail for o in outcomes if o.outcome is Outcome.STALE]
            if stale:
                listed = "\n".join(stale)
                raise PublishError(
                    "stale captures, and publishing never starts a VM; nothing was deployed:"
                    f"\n{listed}\n\n{REFRESH_HINT}"
                ) from None
            raise PublishError(f"the build failed; nothing was deployed:\n\n{exc}") from None
        missing = [name for name in REQUIRED_FILES if not (site / name).is_file()]
        if missing:
            raise PublishError(f"the build has no {', '.join(missing)}; nothing was deployed")
        files = sum(1 for p in site.rglob("*") if p.is_file())
        say(f"built the site for {siteurl}: {files} files")
        if target.kind == "git":
            _deploy_git(site, target, siteurl)
        else:
            _deploy_rsync(site, target)
    say(f"published to {target.describe()}")
    return Published(siteurl, target, files)


def quiet_read_settings(settings: Path, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The settings, without Pelican's warnings about them: the build that follows
    repeats those, and a wrong setting must be reported in one line, alone."""
    logger = logging.getLogger("pelican.settings")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return read_settings(str(settings), override=dict(overrides or {}))
    finally:
        logger.setLevel(level)


def _deploy_rsync(site: Path, target: Target) -> None:
    argv = [
        "rsync",
        "--recursive",
        "--links",
        "--times",
        "--checksum",  # Pelican rewrites every file: compare contents, not times
        "--perms",
        "--chmod=D755,F644",  # readable by the web server whatever the umask here
        "--delete",
        # New files wait beside the old ones and are renamed in at the end, deletions
        # after that: a transfer cut short leaves the old site, not half of each.
        "--delete-delay",
        "--delay-updates",
        f"{site}/",  # the trailing slash: the site's contents, not the directory
        target.where,
    ]
    _run(argv, f"rsync to {target.where}")


def _deploy_git(site: Path, target: Target, siteurl: str) -> None:
    """Commit the site on top of the target branch with ghp-import, then push it.

    The commit is made in a scratch bare repository, never in the author's own
    one, so publishing leaves the project's branches alone; fetching the branch
    first keeps its history and makes the push a fast-forward.
    """
    exists = _git_branch_exists(target)
    with tempfile.TemporaryDirectory(prefix="kblog-ghp-") as scratch:
        env = {**_clean_git_env(), "GIT_DIR": scratch}
        _run(["git", "init", "--quiet", "--bare", scratch], "git init", env=env)
        _run(["git", "remote", "add", "target", target.where], "git remote add", env=env)
        branch_ref = f"refs/heads/{target.branch}"
        remote_ref = f"refs/remotes/target/{target.branch}"
        if exists:
            fetch = ["git", "fetch", "--quiet", "target", f"+{branch_ref}:{remote_ref}"]
            _run(fetch, f"fetching {target.describe()}", env=env)
        env.update(_committer(env))
        ghp = [sys.executable, "-m", "ghp_import", "--no-jekyll", "--branch", target.branch]
        ghp += ["--remote", "target", "--message", f"Publish {siteurl}"]
        if target.cname:
            ghp += ["--cname", target.cname]
        _run([*ghp, str(site)], "ghp-import", env=env, cwd=scratch)
        # ghp-import carries on when git fast-import fails: check a commit was made.
        head = _run(["git", "rev-parse", "--verify", "--quiet", branch_ref], "ghp-import", env=env)
        if exists:
            before = _run(["git", "rev-parse", remote_ref], "git rev-parse", env=env)
            if head == before:
                raise PublishError("ghp-import made no commit; nothing was deployed")
        push = ["git", "push", "--quiet", "target", branch_ref]
        _run(push, f"pushing to {target.describe()}", env=env)


def _git_branch_exists(target: Target) -> bool:
    argv = ["git", "ls-remote", "--heads", target.where, f"refs/heads/{target.branch}"]
    try:
        out = _run(argv, "git ls-remote", env=_clean_git_env())
    except CommandFailed as exc:
        raise PublishSettingsError(
            f"publish repository {target.where} cannot be read: {exc.reason}"
        ) from None
    return bool(out.strip())


def _clean_git_env() -> dict[str, str]:
    """The environment without variables that would point git at another repository
    (set when `invoke publish` runs from a git hook)."""
    drop = {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _committer(env: Mapping[str, str]) -> dict[str, str]:
    """A committer for the publish commit when git has none configured (as in CI)."""
    found = {}
    for key, config, fallback in (
        ("GIT_COMMITTER_NAME", "user.name", "kblog publish"),
        ("GIT_COMMITTER_EMAIL", "user.email", "kblog-publish@localhost"),
    ):
        if env.get(key):
            continue
        done = subprocess.run(
            ["git", "config", "--get", config], env=dict(env), capture_output=True, text=True
        )
        if not done.stdout.strip():
            found[key] = fallback
    return found


class CommandFailed(PublishError):
    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what} failed: {reason}")
        self.reason = reason


def _run(
    argv: Sequence[str], what: str, *, env: Mapping[str, str] | None = None, cwd: str | None = None
) -> str:
    """Run a command; its stdout, or CommandFailed with its first error line."""
    try:
        done = subprocess.run(
            list(argv),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise PublishError(f"{argv[0]} is not installed") from None
    if done.returncode != 0:
        reason = _error_line(done.stderr) or _error_line(done.stdout) or f"exit {done.returncode}"
        raise CommandFailed(what, reason)
    return done.stdout.strip()


def _error_line(text: str) -> str:
    """The line that says what went wrong: git push's verdict on the ref, else the first
    error line, else the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for prefixes in (("! [",), ("fatal:", "error:", "rsync:", "rsync error:")):
        for line in lines:
            if line.lower().startswith(prefixes):
                return line.removeprefix("fatal:").removeprefix("! ").strip()
    return lines[-1] if lines else ""


def _valid_branch(name: str) -> bool:
    done = subprocess.run(
        ["git", "check-ref-format", "--branch", name], capture_output=True, text=True
    )
    return done.returncode == 0
