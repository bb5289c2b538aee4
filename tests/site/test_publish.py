"""`invoke publish`: what arrives at a real rsync directory and a real gh-pages branch.

No VM ever starts here: publishing builds in mode "never", and the committed
captures are fresh for the committed content. Stale ones are made in a copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from htmltree import parse
from minisite import tree_bytes

from kblog.build import BuildError, build_site
from kblog.publish import PublishError, PublishSettingsError, publish

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "publishconf.py"
# A path under the host too: every URL must carry the whole address, not just the host.
SITEURL = "https://kblog.example.org/blog"
ATOM = "{http://www.w3.org/2005/Atom}"
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
EP1 = "first-kernel-module.html"
EP2 = "kernel-segfaults.html"
VARIABLES = (
    "KBLOG_PUBLISH_SITEURL",
    "KBLOG_PUBLISH_RSYNC",
    "KBLOG_PUBLISH_GIT",
    "KBLOG_PUBLISH_BRANCH",
    "KBLOG_PUBLISH_CNAME",
)


def publish_with(env: dict[str, str], overrides: dict[str, Any] | None = None) -> Any:
    """Publish with exactly these KBLOG_PUBLISH_* variables (publishconf.py reads them)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in VARIABLES:
            mp.delenv(name, raising=False)
        for name, value in env.items():
            mp.setenv(name, value)
        return publish(SETTINGS, overrides, say=lambda _: None)


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
    return done.stdout


def bare_repo(path: Path) -> Path:
    git("init", "--quiet", "--bare", str(path))
    return path


def clone_branch(repo: Path, dest: Path, branch: str = "gh-pages") -> Path:
    git("clone", "--quiet", "--branch", branch, str(repo), str(dest))
    return dest


@pytest.fixture(scope="module")
def rsync_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real content/, published to an empty local directory."""
    target = tmp_path_factory.mktemp("rsync-target")
    publish_with({"KBLOG_PUBLISH_SITEURL": SITEURL, "KBLOG_PUBLISH_RSYNC": str(target)})
    return target


@pytest.fixture(scope="module")
def git_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real content/, published to the gh-pages branch of a new bare repository."""
    repo = bare_repo(tmp_path_factory.mktemp("git-target") / "site.git")
    env = {
        "KBLOG_PUBLISH_SITEURL": SITEURL,
        "KBLOG_PUBLISH_GIT": str(repo),
        "KBLOG_PUBLISH_CNAME": "kblog.example.org",
    }
    publish_with(env)
    return repo


@pytest.fixture(scope="module")
def git_site(git_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clone_branch(git_repo, tmp_path_factory.mktemp("git-clone") / "site")


@pytest.fixture(params=["rsync", "git"])
def published(request: pytest.FixtureRequest) -> Path:
    """What arrived at each kind of target, as files."""
    return request.getfixturevalue(f"{request.param}_site")


@pytest.fixture
def copied_site(tmp_path: Path) -> Path:
    """A copy of content/ and snippets/ (kmod/ and kernel/ linked) to edit; returns its
    content/."""
    shutil.copytree(ROOT / "content", tmp_path / "content")
    shutil.copytree(ROOT / "snippets", tmp_path / "snippets")
    (tmp_path / "kmod").symlink_to(ROOT / "kmod")
    (tmp_path / "kernel").symlink_to(ROOT / "kernel")
    return tmp_path / "content"


def local(site: Path, url: str) -> Path:
    """The published file a URL under SITEURL is served from."""
    assert url.startswith(SITEURL + "/"), url
    path = url.removeprefix(SITEURL + "/")
    return site / (path or "index.html")


def html_pages(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob("*.html") if ".git" not in p.parts)


def feed_articles(site: Path) -> list[str]:
    """The address of each entry in the feed of all posts."""
    feed = ET.parse(site / "feeds" / "all.atom.xml").getroot()
    return [
        link.attrib["href"]
        for entry in feed.iter(f"{ATOM}entry")
        for link in entry.iter(f"{ATOM}link")
        if link.attrib.get("rel") == "alternate"
    ]


def sitemap_urls(site: Path) -> list[str]:
    root = ET.parse(site / "sitemap.xml").getroot()
    return [loc.text or "" for loc in root.iter(f"{SITEMAP}loc")]


# What arrived


def test_every_link_and_asset_uses_the_site_address(published: Path) -> None:
    for page in html_pages(published):
        for element in parse(page).iter():
            for attr in ("href", "src"):
                url = element.attrs.get(attr)
                if url is None or url.startswith("#"):
                    continue
                assert "://" in url or url.startswith("mailto:"), f"{page.name}: {attr}={url}"
                if element.tag in ("link", "script") or url.startswith("https://kblog."):
                    assert local(published, url).is_file(), f"{page.name}: {url} is not there"


def test_feeds_link_absolutely_to_published_pages(published: Path) -> None:
    articles = feed_articles(published)
    assert len(articles) >= 2
    for url in articles:
        assert local(published, url).is_file(), url
    for feed in (published / "feeds").glob("*.atom.xml"):
        root = ET.parse(feed).getroot()
        for link in root.iter(f"{ATOM}link"):
            assert link.attrib["href"].startswith(SITEURL + "/"), (feed.name, link.attrib)


def test_sitemap_lists_every_article_and_only_published_pages(published: Path) -> None:
    urls = sitemap_urls(published)
    articles = [
        f"{SITEURL}/{page.relative_to(published)}"
        for page in html_pages(published)
        if parse(page).find_all("body", "kb-article")
    ]
    assert len(articles) == len(list((ROOT / "content").glob("*.md")))
    assert set(articles) <= set(urls)
    assert set(feed_articles(published)) <= set(urls)
    assert {f"{SITEURL}/{EP1}", f"{SITEURL}/{EP2}", f"{SITEURL}/"} <= set(urls)
    for url in urls:
        assert local(published, url).is_file(), url
    assert not [u for u in urls if u.endswith(("404.html", "robots.txt"))]


def test_robots_txt_names_the_sitemap(published: Path) -> None:
    lines = (published / "robots.txt").read_text().splitlines()
    assert f"Sitemap: {SITEURL}/sitemap.xml" in lines
    assert "User-agent: *" in lines


@pytest.mark.parametrize(("name", "url"), [(EP1, EP1), (EP2, EP2), ("index.html", "")])
def test_canonical_links(published: Path, name: str, url: str) -> None:
    links = [
        e for e in parse(published / name).find_all("link") if e.attrs.get("rel") == "canonical"
    ]
    assert [e.attrs["href"] for e in links] == [f"{SITEURL}/{url}"]


@pytest.mark.parametrize("name", [EP1, EP2])
def test_reproduce_bundle_is_where_the_page_links(published: Path, name: str) -> None:
    (box,) = parse(published / name).find_all("section", "kb-reproduce")
    (link,) = [a for a in box.find_all("a") if "download" in a.attrs]
    url = link.attrs["href"]
    assert f"curl -LO {url}" in box.text()  # the command the page shows fetches that file
    bundle = local(published, url)
    stem = bundle.name.removesuffix(".tar.gz")
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
    assert f"{stem}/captures.json" in names and f"{stem}/scenario.json" in names


def test_gh_pages_branch_has_nojekyll_and_cname(git_repo: Path) -> None:
    files = git("--git-dir", str(git_repo), "ls-tree", "--name-only", "gh-pages").split()
    assert ".nojekyll" in files
    cname = git("--git-dir", str(git_repo), "show", "gh-pages:CNAME")
    assert cname.strip() == "kblog.example.org"
    robots = git("--git-dir", str(git_repo), "show", "gh-pages:robots.txt")
    assert f"Sitemap: {SITEURL}/sitemap.xml" in robots


# Publishing again


def test_second_rsync_publish_deletes_what_the_site_no_longer_has(
    copied_site: Path, tmp_path: Path
) -> None:
    target = tmp_path / "www"
    target.mkdir()
    (target / "left-over.html").write_text("from an older site")
    env = {"KBLOG_PUBLISH_SITEURL": SITEURL, "KBLOG_PUBLISH_RSYNC": str(target)}
    overrides = {"PATH": str(copied_site)}
    publish_with(env, overrides)
    assert not (target / "left-over.html").exists()
    assert (target / "tag" / "module-refcount.html").is_file()

    # Only episode 2 has the tag: without it, its page and feed are gone from the site.
    post = copied_site / "ep2-kernel-segfaults.md"
    post.write_text(post.read_text().replace(", module refcount\n", "\n", 1))
    publish_with(env, overrides)
    assert not (target / "tag" / "module-refcount.html").exists()
    assert not (target / "feeds" / "tag-module-refcount.atom.xml").exists()
    assert f"{SITEURL}/tag/module-refcount.html" not in sitemap_urls(target)
    assert (target / "tag" / "printk.html").is_file() and (target / EP2).is_file()


def test_second_git_publish_adds_a_commit_even_without_a_git_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a fresh CI machine: no user.name or user.email anywhere.
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_AUTHOR_NAME", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    repo = bare_repo(tmp_path / "site.git")
    env = {"KBLOG_PUBLISH_SITEURL": SITEURL, "KBLOG_PUBLISH_GIT": str(repo)}
    publish_with(env)
    first = git("--git-dir", str(repo), "rev-parse", "gh-pages").strip()
    publish_with(env)
    log = git("--git-dir", str(repo), "log", "--format=%H %P", "gh-pages").splitlines()
    assert len(log) == 2
    assert log[0].split()[1] == first  # on top of the first publish: history is kept
    assert "CNAME" not in git("--git-dir", str(repo), "ls-tree", "--name-only", "gh-pages")


@pytest.fixture
def remote_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A stand-in for ssh (rsync's RSYNC_RSH) that runs the far end on this host,
    so a host:path target goes through rsync's real remote protocol."""
    shell = tmp_path / "fake-ssh"
    shell.write_text('#!/bin/sh\nshift  # the host name\nexec "$@"\n')
    shell.chmod(0o755)
    monkeypatch.setenv("RSYNC_RSH", str(shell))
    return "somehost"


def test_rsync_to_host_and_path(remote_shell: str, tmp_path: Path) -> None:
    target = tmp_path / "www"
    target.mkdir()
    (target / "left-over.html").write_text("from an older site")
    env = {"KBLOG_PUBLISH_SITEURL": SITEURL, "KBLOG_PUBLISH_RSYNC": f"{remote_shell}:{target}"}
    publish_with(env)
    assert (target / EP1).is_file() and (target / "sitemap.xml").is_file()
    assert not (target / "left-over.html").exists()


def test_rsync_host_path_that_does_not_exist(remote_shell: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    env = {"KBLOG_PUBLISH_SITEURL": SITEURL, "KBLOG_PUBLISH_RSYNC": f"{remote_shell}:{missing}"}
    _one_line_error(env, "cannot be read: .*No such file or directory")
    assert not missing.exists()


def test_rejected_push_leaves_the_branch(tmp_path: Path) -> None:
    repo = bare_repo(tmp_path / "site.git")
    env = {"KBLOG_PUBLISH_SITEURL": SITEURL, "KBLOG_PUBLISH_GIT": str(repo)}
    publish_with(env)
    before = git("--git-dir", str(repo), "rev-parse", "gh-pages")
    hook = repo / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'the server says no' >&2\nexit 1\n")
    hook.chmod(0o755)
    with pytest.raises(PublishError, match="pushing to branch gh-pages") as failed:
        publish_with(env)
    assert "pre-receive hook declined" in str(failed.value)
    assert "\n" not in str(failed.value)
    assert git("--git-dir", str(repo), "rev-parse", "gh-pages") == before


# A stale capture


def _make_stale(content: Path) -> None:
    post = content / "ep1-first-module.md"
    text = post.read_text()
    assert "$ sudo insmod hello.ko\n" in text
    post.write_text(text.replace("$ sudo insmod hello.ko\n", "$ sudo insmod ./hello.ko\n", 1))


def test_stale_capture_fails_the_publish_and_leaves_the_directory(
    copied_site: Path, tmp_path: Path
) -> None:
    target = tmp_path / "www"
    target.mkdir()
    env = {"KBLOG_PUBLISH_SITEURL": SITEURL, "KBLOG_PUBLISH_RSYNC": str(target)}
    overrides = {"PATH": str(copied_site)}
    publish_with(env, overrides)
    before = tree_bytes(target)
    snippets = tree_bytes(copied_site.parent / "snippets")
    _make_stale(copied_site)
    with pytest.raises(PublishError) as failed:
        publish_with(env, overrides)
    message = str(failed.value)
    assert "content/ep1-first-module.md" in message
    assert "stale (changed: scenario)" in message
    assert "make html" in message and "invoke verify --update" in message
    assert "review the diff" in message
    assert tree_bytes(target) == before
    assert tree_bytes(copied_site.parent / "snippets") == snippets

    # Put back, the post publishes again, sitemap included: the failed build left no
    # state behind in this process (pelican-sitemap keeps some between builds).
    post = copied_site / "ep1-first-module.md"
    post.write_text((ROOT / "content" / post.name).read_text())
    publish_with(env, overrides)
    assert f"{SITEURL}/{EP1}" in sitemap_urls(target)


def test_stale_capture_leaves_the_gh_pages_branch(copied_site: Path, tmp_path: Path) -> None:
    repo = bare_repo(tmp_path / "site.git")
    env = {"KBLOG_PUBLISH_SITEURL": SITEURL, "KBLOG_PUBLISH_GIT": str(repo)}
    overrides = {"PATH": str(copied_site)}
    publish_with(env, overrides)
    before = git("--git-dir", str(repo), "rev-parse", "gh-pages")
    _make_stale(copied_site)
    with pytest.raises(PublishError, match="stale"):
        publish_with(env, overrides)
    assert git("--git-dir", str(repo), "rev-parse", "gh-pages") == before


# Bad input: one line each, nothing deployed


@pytest.fixture
def empty_target(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "www"
    target.mkdir()
    yield target
    assert list(target.iterdir()) == [], "something was deployed"


def _one_line_error(env: dict[str, str], match: str) -> str:
    with pytest.raises(PublishSettingsError, match=match) as failed:
        publish_with(env)
    message = str(failed.value)
    assert "\n" not in message, message
    return message


def test_no_target(empty_target: Path) -> None:
    _one_line_error({"KBLOG_PUBLISH_SITEURL": SITEURL}, "no publish target")


def test_two_targets(empty_target: Path, tmp_path: Path) -> None:
    repo = bare_repo(tmp_path / "site.git")
    env = {
        "KBLOG_PUBLISH_SITEURL": SITEURL,
        "KBLOG_PUBLISH_RSYNC": str(empty_target),
        "KBLOG_PUBLISH_GIT": str(repo),
    }
    _one_line_error(env, "choose one target")
    assert git("--git-dir", str(repo), "for-each-ref") == ""


@pytest.mark.parametrize("address", ["example.org", "example.org/blog", "ftp://example.org"])
def test_site_address_without_a_usable_scheme(empty_target: Path, address: str) -> None:
    env = {"KBLOG_PUBLISH_SITEURL": address, "KBLOG_PUBLISH_RSYNC": str(empty_target)}
    message = _one_line_error(env, "needs a scheme")
    assert message.endswith(f"KBLOG_PUBLISH_SITEURL=https://{address.removeprefix('ftp://')}")


def test_no_site_address(empty_target: Path) -> None:
    _one_line_error({"KBLOG_PUBLISH_RSYNC": str(empty_target)}, "no site address")


def test_rsync_directory_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "www"
    env = {"KBLOG_PUBLISH_SITEURL": SITEURL, "KBLOG_PUBLISH_RSYNC": str(missing)}
    _one_line_error(env, "does not exist")
    assert not missing.exists() and not missing.parent.exists()


def test_rsync_target_that_is_a_file(tmp_path: Path) -> None:
    file = tmp_path / "www"
    file.write_text("not a directory")
    env = {"KBLOG_PUBLISH_SITEURL": SITEURL, "KBLOG_PUBLISH_RSYNC": str(file)}
    _one_line_error(env, "is not a directory")
    assert file.read_text() == "not a directory"


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory this process cannot create files in, even as root."""
    path = tmp_path / "www"
    path.mkdir()
    (path / "index.html").write_text("the site as it was")
    path.chmod(0o555)
    immutable = False
    if os.geteuid() == 0:  # root ignores modes: make it immutable instead
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
        if done.returncode != 0:
            path.chmod(0o755)
            pytest.fail(f"cannot make a directory read-only for root: {done.stderr!r}")
        immutable = True
    yield path
    if immutable:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    path.chmod(0o755)


def test_rsync_directory_that_cannot_be_written(read_only_dir: Path) -> None:
    env = {"KBLOG_PUBLISH_SITEURL": SITEURL, "KBLOG_PUBLISH_RSYNC": str(read_only_dir)}
    _one_line_error(env, "cannot be written")
    assert [p.name for p in read_only_dir.iterdir()] == ["index.html"]


def test_rsync_directory_holding_the_content() -> None:
    env = {"KBLOG_PUBLISH_SITEURL": SITEURL, "KBLOG_PUBLISH_RSYNC": str(ROOT)}
    _one_line_error(env, "holds the content itself")


@pytest.mark.parametrize("kind", ["missing", "not a repository"])
def test_git_repository_that_does_not_exist(tmp_path: Path, kind: str) -> None:
    where = tmp_path / "site.git"
    if kind == "not a repository":
        where.mkdir()
    env = {"KBLOG_PUBLISH_SITEURL": SITEURL, "KBLOG_PUBLISH_GIT": str(where)}
    _one_line_error(env, "cannot be read")
    assert not where.exists() or list(where.iterdir()) == []


def test_cname_with_an_rsync_target(empty_target: Path) -> None:
    env = {
        "KBLOG_PUBLISH_SITEURL": SITEURL,
        "KBLOG_PUBLISH_RSYNC": str(empty_target),
        "KBLOG_PUBLISH_CNAME": "kblog.example.org",
    }
    _one_line_error(env, "KBLOG_PUBLISH_CNAME is for a git")


# The task itself


def _invoke_publish(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    return subprocess.run(
        [sys.executable, "-m", "invoke", "publish"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KBLOG_PUBLISH_SITEURL": "example.org"}, "site address 'example.org' needs a scheme"),
        ({}, "no site address"),
        ({"KBLOG_PUBLISH_SITEURL": SITEURL}, "no publish target"),
    ],
)
def test_invoke_publish_says_what_is_wrong_in_one_line(env: dict[str, str], message: str) -> None:
    done = _invoke_publish(env)
    assert done.returncode == 2
    assert done.stderr.startswith(f"publish: {message}")
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert done.stdout == ""


def test_invoke_publish_deploys_and_leaves_output_alone(tmp_path: Path) -> None:
    output = tree_bytes(ROOT / "output")
    env = {"KBLOG_PUBLISH_SITEURL": SITEURL, "KBLOG_PUBLISH_RSYNC": str(tmp_path)}
    done = _invoke_publish(env)
    assert done.returncode == 0, done.stderr
    assert f"published to {tmp_path}" in done.stdout
    assert (tmp_path / "sitemap.xml").is_file() and (tmp_path / EP1).is_file()
    assert tree_bytes(ROOT / "output") == output


def test_a_build_after_a_failed_one_still_has_its_sitemap(
    copied_site: Path, tmp_path: Path
) -> None:
    """pelican-sitemap keeps its queue in the process: a build that stopped on a
    content error must not leave the next one, in the same process, without it."""
    broken = copied_site / "ep1-first-module.md"
    broken.write_text(broken.read_text() + "\nSee [the next]({filename}ep9-nope.md).\n")
    quiet = {"mode": "never", "write_captures": False}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KBLOG_PUBLISH_SITEURL", SITEURL)
        with pytest.raises(BuildError, match="dead link"):
            build_site(SETTINGS, tmp_path / "broken", {"PATH": str(copied_site)}, **quiet)
        build_site(SETTINGS, tmp_path / "good", **quiet)
    assert f"{SITEURL}/{EP1}" in sitemap_urls(tmp_path / "good")
