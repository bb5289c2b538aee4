"""Where a scenario runs: in the sandbox container (docker) or with QEMU on this host (local).

Both take the same arguments as runner.execute.run_scenario and give the same
results; `auto` takes docker wherever an engine answers, else local, and says why.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from runner.scenario import ScenarioResult

NAMES = ("auto", "docker", "local")
Backend = Callable[..., ScenarioResult]


class BackendUnavailable(RuntimeError):
    """The backend asked for cannot run here; the message says why in one line."""


def default_name() -> str:
    return os.environ.get("KBLOG_BACKEND", "auto")


def select(name: str, say: Callable[[str], None] = print) -> tuple[str, Backend]:
    """(the backend's name, its run function) for `name`, one of NAMES."""
    if name not in NAMES:
        raise BackendUnavailable(f"unknown backend {name!r}: expected one of {', '.join(NAMES)}")
    if name != "local":
        try:
            from runner import docker_backend
        except ImportError as exc:  # the docker SDK is not installed
            ok, why = False, f"the docker Python package is missing ({exc.name})"
        else:
            ok, why = docker_backend.docker_available()
        if ok:
            if name == "auto":
                say(f"backend: docker ({why})")
            return "docker", docker_backend.run_in_container
        if name == "docker":
            raise BackendUnavailable(f"the docker backend is not available: {why}")
        say(f"backend: local ({why})")
    from runner.execute import run_scenario

    return "local", run_scenario
