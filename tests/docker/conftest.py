"""Fixtures of the docker backend tests: an engine that answers, and the image.

When no engine answers, one `dockerd` is started for the session (as root only)
and stopped at its end; an engine that was already running is left alone. The
started engine uses Docker's default data root, /var/lib/docker, so images built
by one session stay for the next: the image is rebuilt only when its input label
(base, Dockerfile, runner/, kernels) no longer matches.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from runner.backends import docker_image

if TYPE_CHECKING:
    import docker

ENGINE_START_TIMEOUT = 60.0
ENGINE_STOP_TIMEOUT = 30.0


def _wait_for_engine(proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + ENGINE_START_TIMEOUT
    while time.monotonic() < deadline:
        if docker_image.docker_available()[0]:
            return
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-10:]
            pytest.fail("dockerd exited at once:\n" + "\n".join(tail))
        time.sleep(0.25)
    pytest.fail(f"dockerd did not answer within {ENGINE_START_TIMEOUT:.0f} s; see {log}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the dockerd this session started, and wait until it has exited."""
    if proc.poll() is not None:
        return
    proc.terminate()  # dockerd shuts its containers down and exits on SIGTERM
    try:
        proc.wait(timeout=ENGINE_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def docker_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[docker.DockerClient]:
    """A client of an engine that answers, starting dockerd for the session if needed."""
    ok, why = docker_image.docker_available()
    proc: subprocess.Popen[bytes] | None = None
    if not ok:
        dockerd = shutil.which("dockerd")
        if dockerd is None or os.geteuid() != 0 or os.environ.get("DOCKER_HOST"):
            pytest.fail(f"{why}; and this session cannot start dockerd itself")
        log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [dockerd], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        _wait_for_engine(proc, log)
    try:
        client = docker_image.connect()
        try:
            yield client
        finally:
            client.close()
    finally:
        if proc is not None:
            _stop(proc)


@pytest.fixture(scope="session")
def runner_image(docker_client: docker.DockerClient) -> str:
    """The sandbox image, built only when missing or outdated (minutes, once)."""
    lines: list[str] = []
    try:
        tag, _ = docker_image.ensure_image(docker_client, log=lines.append)
    except Exception as exc:
        raise AssertionError("building the image failed:\n" + "\n".join(lines[-30:])) from exc
    return tag
