"""Kernel series: the newest ABI and linux-source from apt's real lists, overrides, a gone
pin, --bump."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from runner import config
from runner.guest import image as guest_image
from runner.kernels import abi as kernels
from runner.kernels import debian

ROOT = Path(__file__).resolve().parents[2]
GONE = "6.1.0-9999-amd64"


def test_each_configured_release_is_of_a_known_series() -> None:
    one = kernels.series(config.Kernel("6.1", "6.1.0-56-amd64"))
    assert (one.release(57), one.abi("6.1.0-57-amd64"), one.abi("6.1.0-57-rt-amd64")) == (
        "6.1.0-57-amd64",
        57,
        None,
    )
    twelve = kernels.series(config.Kernel("6.12", "6.12.107+deb12-amd64"))
    assert twelve.release(117) == "6.12.117+deb12-amd64"
    assert twelve.abi("6.12.117+deb12-cloud-amd64") is None
    for k in config.KERNELS.values():
        assert kernels.series(k).abi(k.release) is not None
    with pytest.raises(ValueError, match="not a Debian kernel ABI"):
        kernels.series(config.Kernel("6.1", "6.2.0-1-amd64"))


def test_the_newest_abi_of_each_series_is_a_real_package() -> None:
    tracks = {t.label: t for t in kernels.track()}
    assert set(tracks) == set(config.KERNELS)
    newest_61 = tracks["6.1"].newest
    assert newest_61 is not None and re.fullmatch(r"6\.1\.0-\d+-amd64", newest_61)
    assert int(newest_61.split("-")[1]) >= int(config.KERNELS["6.1"].release.split("-")[1])
    assert re.fullmatch(r"6\.12\.\d+\+deb12-amd64", tracks["6.12"].newest or "")
    for t in tracks.values():
        assert list(t.offered) == sorted(
            t.offered, key=lambda r: kernels.series(config.KERNELS[t.label]).abi(r) or 0
        )
        newest = config.Kernel(t.label, t.newest or "")
        # apt itself knows both packages a run needs.
        assert debian.show(newest.image_package)["Package"] == newest.image_package
        assert debian.show(newest.headers_package)["Package"] == newest.headers_package


def test_a_gone_pin_names_the_newest_abi_and_the_bump(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KBLOG_CACHE", str(tmp_path))
    monkeypatch.setenv(config.RELEASES_ENV, f"6.1={GONE}")
    kernel = config.kernel("6.1")
    assert kernel.release == GONE
    with pytest.raises(kernels.KernelGone) as caught:
        guest_image.kernel_tree(kernel, log=lambda _msg: None)
    gone = caught.value
    assert gone.newest is not None and re.fullmatch(r"6\.1\.0-\d+-amd64", gone.newest)
    assert gone.newest != GONE
    message = str(gone)
    assert "\n" not in message
    assert f"Debian no longer offers linux-image-{GONE}-unsigned" in message
    assert f"the newest 6.1 ABI Debian offers is {gone.newest}" in message
    assert "`invoke kernels --bump`" in message
    assert not (tmp_path / "kernels" / GONE).exists()  # nothing half-made left behind


def test_releases_override_replaces_only_what_it_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(config.RELEASES_ENV, raising=False)
    assert config.kernels() == config.KERNELS
    with config.releases_override({"6.1": "6.1.0-57-amd64"}):
        assert config.kernel("6.1").release == "6.1.0-57-amd64"
        assert config.kernel("6.1.0-57-amd64").name == "6.1"
        assert config.kernel("6.12") == config.KERNELS["6.12"]
    assert config.kernel("6.1") == config.KERNELS["6.1"]
    with pytest.raises(ValueError, match=re.escape("unknown kernel '6.2'")):
        config.parse_releases("6.2=6.2.0-1-amd64")
    with pytest.raises(ValueError, match=re.escape("not a version of Linux 6.1")):
        config.parse_releases("6.1=6.12.107+deb12-amd64")
    with pytest.raises(ValueError, match="LABEL=VERSION"):
        config.parse_releases("6.1")


def test_sources_override_replaces_the_source_version_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(config.SOURCES_ENV, raising=False)
    with config.releases_override({"6.12": "6.12.200-1~deb12u1"}, config.SOURCES_ENV):
        assert config.kernel("6.12").source == "6.12.200-1~deb12u1"
        assert config.kernel("6.12").release == config.KERNELS["6.12"].release
        assert config.kernel("6.1") == config.KERNELS["6.1"]
    assert config.kernel("6.12") == config.KERNELS["6.12"]
    with pytest.raises(ValueError, match=re.escape(f"{config.SOURCES_ENV}: '6.13.1-1'")):
        config.parse_releases("6.12=6.13.1-1", config.SOURCES_ENV)


def test_each_series_pins_its_own_linux_source_and_apt_offers_it() -> None:
    """6.1 builds linux-source-6.1, 6.12 linux-source-6.12: each pin is a real version."""
    for label, k in config.KERNELS.items():
        assert k.source_package == f"linux-source-{label}"
        assert k.source.startswith(f"{label}.")
        assert k.source in debian.versions(k.source_package)


def test_rewrite_pins_changes_only_the_sources(tmp_path: Path) -> None:
    source = kernels.CONFIG_FILE.read_text()
    new = kernels.rewrite_pins(source, {"6.12": "6.12.200-1~deb12u1"}, "source")
    changed = [(a, b) for a, b in zip(source.splitlines(), new.splitlines(), strict=True) if a != b]
    assert len(changed) == 1
    module = _load(tmp_path / "rewritten_sources.py", new)
    assert module.KERNELS["6.12"].source == "6.12.200-1~deb12u1"
    assert module.KERNELS["6.12"].release == config.KERNELS["6.12"].release
    assert module.KERNELS["6.1"].source == config.KERNELS["6.1"].source


def test_rewrite_pins_changes_only_the_releases(tmp_path: Path) -> None:
    source = kernels.CONFIG_FILE.read_text()
    new = kernels.rewrite_pins(source, {"6.1": "6.1.0-57-amd64", "6.12": "6.12.117+deb12-amd64"})
    changed = [(a, b) for a, b in zip(source.splitlines(), new.splitlines(), strict=True) if a != b]
    assert len(changed) == 2
    for before, after in changed:
        assert re.sub(r'release="[^"]*"', "", before) == re.sub(r'release="[^"]*"', "", after)
    module = _load(tmp_path / "rewritten_config.py", new)
    pins = {label: k.release for label, k in module.KERNELS.items()}
    assert pins == {"6.1": "6.1.0-57-amd64", "6.12": "6.12.117+deb12-amd64"}
    assert kernels.rewrite_pins(source, {}) == source
    with pytest.raises(ValueError, match=re.escape("6.2")):
        kernels.rewrite_pins(source, {"6.2": "6.2.0-1-amd64"})


def _load(path: Path, text: str) -> ModuleType:
    """`text` imported as a module: it is valid Python, and this is what it defines."""
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[path.stem]
    return module


def test_bump_rewrites_the_file_it_is_given(tmp_path: Path) -> None:
    copy = tmp_path / "config.py"
    copy.write_text(kernels.CONFIG_FILE.read_text())
    pinned = config.KERNELS["6.1"].release
    assert kernels.bump({"6.1": pinned}, copy) == {}
    moved = kernels.bump({"6.1": "6.1.0-9998-amd64"}, copy)
    assert moved == {"6.1": (pinned, "6.1.0-9998-amd64")}
    assert 'Kernel(name="6.1", release="6.1.0-9998-amd64", source=' in copy.read_text()
    source = config.KERNELS["6.1"].source
    moved = kernels.bump({"6.1": "6.1.9999-1"}, copy, field="source")
    assert moved == {"6.1": (source, "6.1.9999-1")}
    assert 'release="6.1.0-9998-amd64", source="6.1.9999-1")' in copy.read_text()


def _invoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_invoke_kernels_shows_pin_and_newest_per_series() -> None:
    done = _invoke("kernels")
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    assert header.split() == ["kernel", "pinned", "newest", "in", "Debian", "source", "pinned",
                              "newest", "source"]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in lines[:2]}
    for label, k in config.KERNELS.items():
        assert rows[label][1] == k.release
        assert kernels.series(k).abi(rows[label][2]) is not None
        assert rows[label][3] == k.source
        assert rows[label][4] in debian.versions(k.source_package)


def test_invoke_kernels_refuses_an_unknown_label() -> None:
    done = _invoke("kernels", "--kernel", "6.2")
    assert done.returncode == 2
    assert done.stderr.strip() == "unknown kernel '6.2'; configured kernels: 6.1, 6.12"


def test_reproduce_falls_back_to_the_newest_abi_and_reports_drift(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The bundle pins an ABI Debian dropped: the run moves to the newest one of the
    series and the report says how it differs from the page. The backend here is a
    stand-in that boots nothing: it asks guest_image for the kernel as the local backend
    does first (real apt lists), then hands back the published capture, edited."""
    import copy
    import io

    from kblog.parse import read_post
    from runner import freeze, reproduce
    from runner.scenario import ScenarioResult

    monkeypatch.setenv("KBLOG_CACHE", str(tmp_path))
    monkeypatch.setenv(config.RELEASES_ENV, f"6.1={GONE}")
    post = ROOT / "content" / "ep1-first-module.md"
    scenario = read_post(post, "content/ep1-first-module.md").scenario
    published = freeze.load(ROOT / "snippets" / "ep1-first-module.json")
    ran_on: list[str] = []

    def run(scenario: object, label: str, **_kwargs: object) -> ScenarioResult:
        kernel = config.kernel(label)
        ran_on.append(kernel.release)
        if kernel.release == GONE:
            guest_image.kernel_tree(kernel, log=lambda _msg: None)
        result = copy.deepcopy(published[label].result)
        # Drift the post accepts: a step whose expectation ends in "..." prints more.
        loose = next(
            i for i, s in enumerate(scenario.steps) if s.expected and s.expected[-1] == "..."
        )
        result.steps[loose].output += "\na line the newer kernel prints"
        return result

    out = io.StringIO()
    done = reproduce.reproduce(scenario, published, ROOT / "kmod", "6.1", out=out, run=run)
    newest = ran_on[-1]
    assert ran_on[0] == GONE and re.fullmatch(r"6\.1\.0-\d+-amd64", newest) and newest != GONE
    said = out.getvalue()
    assert f"Debian no longer offers {GONE}, the kernel this bundle pins" in said
    assert f"reproducing on {newest}, the newest Linux 6.1 ABI, instead" in said
    assert done.fallback == newest and done.ok and not done.matches
    pinned = published["6.1"].result.provenance.kernel
    assert f"differs from the published capture (captured on {pinned}; this ran on {newest})" in (
        done.report
    )
    assert "+a line the newer kernel prints" in done.report
    assert config.kernel("6.1").release == GONE  # the override ends with the fallback run
