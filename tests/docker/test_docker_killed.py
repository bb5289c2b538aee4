"""The sandbox container killed from outside mid-step (`docker kill`, or the OOM
killer): a real site build with the docker backend fails naming the post's
file:line and the step, says the container was killed, and leaves no container,
and output/ and snippets/ as they were."""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from minisite import KILLED_LINE, KILLED_POST, ROOT, MiniSite, build_killed_mid_step, tree_bytes

from runner.backends import docker as docker_backend

if TYPE_CHECKING:
    import docker

pytestmark = [pytest.mark.docker, pytest.mark.vm]

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

    def kill_container() -> str:
        (name,) = our_containers(docker_client)
        docker_client.containers.get(name).kill()  # `docker kill NAME`: SIGKILL
        return name

    done = build_killed_mid_step(site, monkeypatch, kill_container)
    message, took, killed = done.message, done.seconds, done.killed
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
