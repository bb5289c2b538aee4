"""What a post's bundle holds, and how a reproduction hands it to the backend."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from kblog_snippets import bundle

from runner import config, memo, reproduce
from runner.scenario import Scenario, ScenarioResult, Step


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _scenario() -> Scenario:
    return Scenario("post", [Step("t", "console", "uname -r")])


def test_a_bundle_carries_kernel_beside_kmod(tmp_path: Path) -> None:
    kmod = _tree(tmp_path / "kmod", {"syscall/0001-x.patch": "patch\n"})
    kernel = _tree(tmp_path / "kernel", {"guest.config": "CONFIG_A=y\n"})
    runner = _tree(tmp_path / "runner", {"__init__.py": ""})
    assert config.kernel_dir_for(kmod) == kernel
    data = bundle.make("post", _scenario(), "{}", kmod, kernel, runner)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = set(tar.getnames())
        fragment = tar.extractfile("post/kernel/guest.config")
        assert fragment is not None and fragment.read() == b"CONFIG_A=y\n"
    assert {"post/kmod/syscall/0001-x.patch", "post/runner/__init__.py"} <= names
    assert data == bundle.make("post", _scenario(), "{}", kmod, kernel, runner)
    # A site without kernel/ (its posts build no kernel) makes a bundle without it.
    bare = bundle.make("post", _scenario(), "{}", kmod, tmp_path / "none", runner)
    with tarfile.open(fileobj=io.BytesIO(bare)) as tar:
        assert not any(n.startswith("post/kernel") for n in tar.getnames())


def test_the_repository_bundles_its_own_kernel_config() -> None:
    assert config.kernel_dir_for(config.KMOD) == config.KERNEL_DIR
    assert (config.KERNEL_DIR / "guest.config").is_file()


class Ran(Exception):
    """The backend was called: what it was given is all the test looks at."""


def test_reproduce_hands_kmod_and_kernel_of_the_bundle_to_the_backend(tmp_path: Path) -> None:
    (tmp_path / "kmod").mkdir()
    (tmp_path / "scenario.json").write_text(json.dumps(_scenario().to_json()))
    scenario, published, kmod = reproduce.load_bundle(tmp_path)
    given: dict[str, object] = {}

    def run(scenario: Scenario, label: str | None = None, **kwargs: object) -> ScenarioResult:
        given.update(kwargs)
        raise Ran

    with pytest.raises(Ran):
        reproduce.reproduce(scenario, published, kmod, "6.1", out=io.StringIO(), run=run)
    assert given["kmod_dir"] == tmp_path / "kmod"
    assert given["kernel_dir"] == tmp_path / "kernel"


def test_cached_bundles_unused_for_long_are_pruned(tmp_path, monkeypatch) -> None:
    """A cached gzip is refreshed when a build uses it; one no build has wanted for
    two weeks goes when a new one is made, so changes do not pile up in the cache."""
    import os
    import time

    from kblog_snippets import bundle

    monkeypatch.setenv("KBLOG_CACHE", str(tmp_path))
    first = bundle._compressed(b"one")
    (old,) = (tmp_path / "bundles").glob("*.tar.gz")
    long_ago = time.time() - bundle.UNUSED_FOR - 60
    os.utime(old, (long_ago, long_ago))
    assert bundle._compressed(b"one") == first  # a hit: in use again
    assert old.stat().st_mtime > long_ago
    os.utime(old, (long_ago, long_ago))
    bundle._compressed(b"two")  # a new one is made: the unused one goes
    assert not old.exists()
    assert len(list((tmp_path / "bundles").glob("*.tar.gz"))) == 1


def test_a_kept_bundle_follows_every_file_it_holds(tmp_path, monkeypatch) -> None:
    """Bundles are kept between builds (bundle.MADE) under their inputs: an edited
    file, or one made executable, gives a new bundle; the same inputs the kept one."""
    monkeypatch.setenv("KBLOG_CACHE", str(tmp_path / "cache"))
    kmod = _tree(tmp_path / "kmod", {"hello/hello.c": "int x;\n"})
    runner = _tree(tmp_path / "runner", {"__init__.py": ""})
    kernel = tmp_path / "kernel"

    def made() -> dict[str, tuple[int, bytes]]:
        data = bundle.make("post", _scenario(), "{}", kmod, kernel, runner)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            return {
                m.name: (m.mode, tar.extractfile(m).read())  # type: ignore[union-attr]
                for m in tar.getmembers()
            }

    first = made()
    assert made() == first
    (kmod / "hello" / "hello.c").write_text("int y;\n")
    edited = made()
    assert edited["post/kmod/hello/hello.c"] == (0o644, b"int y;\n")
    (kmod / "hello" / "hello.c").chmod(0o755)
    assert made()["post/kmod/hello/hello.c"] == (0o755, b"int y;\n")
    assert len(list(memo.folder(bundle.MADE.kind).glob("*.json"))) == 3
