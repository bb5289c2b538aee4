"""The container a run gets, decided without an engine: its mounts, its arguments, its input."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from runner.backends import docker as docker_backend
from runner.backends import docker_image
from runner.backends.docker import DockerBackendError, input_archive, least_privilege


def test_only_a_kernel_build_gets_the_kernel_cache_volume() -> None:
    assert "binds" not in least_privilege([])
    binds = least_privilege([], builds_kernel=True)["binds"]
    assert binds == {
        docker_backend.KERNEL_CACHE_VOLUME: {"bind": docker_image.KERNEL_CACHE, "mode": "rw"}
    }
    # Everything else stays as least as it was.
    assert least_privilege([], builds_kernel=True)["read_only"] is True
    assert least_privilege([], builds_kernel=True)["cap_drop"] == ["ALL"]


def test_moving_the_kernel_cache_rebuilds_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Dockerfile makes the mount point from a build argument, the path the backend
    mounts the volume at: moving it changes the image's inputs, so the image is rebuilt
    (tests/docker/test_kernel_docker.py looks at the directory in the image)."""
    before = docker_image.inputs_digest("base")
    monkeypatch.setattr(docker_image, "KERNEL_CACHE", "/opt/kblog/elsewhere")
    assert docker_image.inputs_digest("base") != before


def test_the_runner_in_the_container_reads_its_input_from_the_volume() -> None:
    plain = docker_backend.runner_command("6.1", builds_kernel=False, console=False)
    assert plain[:2] == ["-", "--json"] and "--kernel-dir" not in plain
    assert plain[plain.index("--kmod") + 1] == docker_backend.KMOD_IN_CONTAINER
    kernel = docker_backend.runner_command("6.1", builds_kernel=True, console=True)
    assert kernel[kernel.index("--kernel-dir") + 1] == docker_backend.KERNEL_DIR_IN_CONTAINER
    assert kernel[kernel.index("--console") + 1] == docker_backend.CONSOLE_IN_CONTAINER
    for path in (docker_backend.KMOD_IN_CONTAINER, docker_backend.KERNEL_DIR_IN_CONTAINER):
        assert path.startswith(docker_backend.INPUT_IN_CONTAINER + "/")


def _names(archive: bytes) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name for m in tar.getmembers() if m.isfile()}


def test_the_input_carries_kmod_and_the_kernel_config(tmp_path: Path) -> None:
    kmod, kernel = tmp_path / "kmod", tmp_path / "kernel"
    (kmod / "syscall").mkdir(parents=True)
    (kmod / "syscall" / "0001-x.patch").write_text("--- a\n+++ b\n")
    (kmod / "syscall" / "built.o").write_text("")  # a build product stays out
    kernel.mkdir()
    (kernel / "guest.config").write_text("CONFIG_A=y\n")
    assert _names(input_archive(kmod, None)) == {"kmod/syscall/0001-x.patch"}
    assert _names(input_archive(kmod, kernel)) == {
        "kmod/syscall/0001-x.patch",
        "kernel/guest.config",
    }
    with pytest.raises(DockerBackendError, match="no such directory"):
        input_archive(kmod, tmp_path / "missing")


def test_a_kmod_that_is_a_symlink_is_sent_as_its_directory(tmp_path: Path) -> None:
    """A reader's kmod/ may be a link to their checkout: the container gets the files."""
    real = tmp_path / "real-kmod"
    (real / "hello").mkdir(parents=True)
    (real / "hello" / "hello.c").write_text("/* hello */\n")
    (tmp_path / "kmod").symlink_to(real)
    assert _names(input_archive(tmp_path / "kmod", None)) == {"kmod/hello/hello.c"}
