"""The sandbox container killed from outside mid-step (`docker kill`, or the OOM
killer): a real site build with the docker backend fails naming the post's
file:line and the step, says the container was killed, and leaves no container,
and output/ and snippets/ as they were."""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from minisite import KILLED_LINE, KILLED_POST, ROOT, MiniSite, tree_bytes, watch_step_starts

from kblog.build import BuildError
from runner.backends import docker as docker_backend

if TYPE_CHECKING:
    import docker

pytestmark = [pytest.mark.docker, pytest.mark.vm]

SETTLE = 2.0  # seconds from the step's start to the kill: its command is typed by then
POST = "killed-in-docker"  # the scenario's name: its container's label


def our_containers(client: docker.DockerClient) -> list[str]:
    """This process's run containers of POST, stopped ones too."""
    owner = f"{docker_backend.OWNER_LABEL}={socket.gethostname()}:{os.getpid()}"
    found = client.containers.list(
        all=True, filters={"label": [f"{docker_backend.RUN_LABEL}={POST}", owner]}
    )
    return [c.name for c in found]


def test_container_killed_mid_step_fails_the_build_and_leaves_nothing(
    docker_client: docker.DockerClient,
    runner_image: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = MiniSite(tmp_path)
    site.content.mkdir()
    # A copy: the backend sends kmod/ as a tar, and a symlink would go as the link.
    shutil.copytree(ROOT / "kmod", tmp_path / "kmod", symlinks=True)
    monkeypatch.setenv("KBLOG_BACKEND", "docker")
    site.add("second.md")
    site.build()
    before = tree_bytes(site.output), tree_bytes(site.snippets)
    site.add(f"{POST}.md", KILLED_POST)
    step_started = watch_step_starts(monkeypatch)
    killed: list[str] = []

    def kill_while_it_sleeps() -> None:
        if not step_started(1).wait(timeout=50):
            return  # the build then fails the test by not failing as it should
        time.sleep(SETTLE)
        (name,) = our_containers(docker_client)
        docker_client.containers.get(name).kill()  # `docker kill NAME`: SIGKILL
        killed.append(name)

    killer = threading.Thread(target=kill_while_it_sleeps)
    killer.start()
    started = time.monotonic()
    try:
        with pytest.raises(BuildError) as info:
            site.build()
    finally:
        killer.join(timeout=60)
    took = time.monotonic() - started
    message = str(info.value)

    assert killed, message
    assert took < 30, f"the build took {took:.0f} s: it waited the sleep out"
    assert re.search(
        rf"content/{POST}\.md:{KILLED_LINE}: step 2 \(t: 'sleep 30', kernel 6\.1\): "
        r".*the sandbox container was killed",
        message,
        re.S,
    ), message
    assert "Traceback" not in message
    assert our_containers(docker_client) == []
    assert (tree_bytes(site.output), tree_bytes(site.snippets)) == before
