"""Where a scenario runs: in the sandbox container (docker) or with QEMU on this host (local).

Both take the same arguments as runner.execute.run_scenario and give the same
results; `auto` takes docker wherever an engine answers, else local, and says why.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from runner import config
from runner.events import Activity, Log, Progress
from runner.scenario import Scenario, ScenarioResult

NAMES = ("auto", "docker", "local")


class Backend(Protocol):
    """What both backends take: run_scenario (local) and run_in_container (docker)."""

    def __call__(
        self,
        scenario: Scenario,
        kernel_name: str | None = None,
        *,
        kmod_dir: Path = config.KMOD,
        kernel_dir: Path = config.KERNEL_DIR,
        log: Log = print,
        progress: Progress | None = None,
        activity: Activity | None = None,
        console_copy: Path | None = None,
    ) -> ScenarioResult: ...


class BackendUnavailable(RuntimeError):
    """The backend asked for cannot run here; the message says why in one line."""


def default_name() -> str:
    return os.environ.get("KBLOG_BACKEND", "auto")


def select(name: str, say: Log = print) -> tuple[str, Backend]:
    """(the backend's name, its run function) for `name`, one of NAMES."""
    if name not in NAMES:
        raise BackendUnavailable(f"unknown backend {name!r}: expected one of {', '.join(NAMES)}")
    if name != "local":
        try:
            from runner.backends import docker as docker_backend
            from runner.backends import docker_image
        except ImportError as exc:  # the docker SDK is not installed
            ok, why = False, f"the docker Python package is missing ({exc.name})"
        else:
            ok, why = docker_image.docker_available()
        if ok:
            if name == "auto":
                say(f"backend: docker ({why})")
            return "docker", docker_backend.run_in_container
        if name == "docker":
            raise BackendUnavailable(f"the docker backend is not available: {why}")
        say(f"backend: local ({why})")
    from runner.execute import run_scenario

    return "local", run_scenario
