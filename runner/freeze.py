"""Frozen captures: snippets/<post>.json, one human-diffable file per post.

Each kernel's capture is stored with the key it was made under: a hash of the
post's scenario, the kmod/ sources, the kernel, and the runner sources (the guest
image recipe among them) that shape a capture. A capture whose key still
matches is reused without a VM.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from runner import config, runner_digest, sources
from runner.kernels import source as kernel_source
from runner.scenario import Scenario, ScenarioResult

FORMAT = 1
TEXT_FIELDS = ("output",)  # stored as lists of lines, so diffs read line by line


def tree_inputs(kmod: Path) -> dict[str, str]:
    """The inputs every post shares: hashes of kmod/, of kernel/ beside it (the built
    guest kernel's config) and of the runner (guest recipe included)."""
    return {
        "kmod": sources.tree_digest(kmod),
        "kernel_config": sources.tree_digest(config.kernel_dir_for(kmod)),
        "runner": runner_digest(),
    }


def key_inputs(scenario: Scenario, kernel: config.Kernel, shared: dict[str, str]) -> dict[str, str]:
    """What one post's capture on one kernel depends on; `shared` from tree_inputs().
    Only a post that builds the kernel depends on kernel/ and the source's version."""
    inputs = {"scenario": scenario.digest(), "kernel": kernel.release, **shared}
    if scenario.builds_kernel:
        inputs["kernel_source"] = kernel_source.candidate_version()
    else:
        inputs.pop("kernel_config", None)
    return inputs


def key_of(inputs: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:20]


def load(path: Path) -> dict[str, Any]:
    """The frozen file's kernels table ({} when there is none yet)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); delete it to re-capture") from None
    if data.get("format") != FORMAT:
        return {}
    return data.get("kernels", {})


def entry_result(entry: dict[str, Any]) -> ScenarioResult:
    data = json.loads(json.dumps(entry["result"]))
    for step in data["steps"]:
        for name in TEXT_FIELDS:
            if isinstance(step[name], list):
                step[name] = "\n".join(step[name])
    return ScenarioResult.from_json(data)


def make_entry(inputs: dict[str, str], result: ScenarioResult) -> dict[str, Any]:
    data = result.to_json()
    for step in data["steps"]:
        for name in TEXT_FIELDS:
            step[name] = step[name].split("\n")
    return {"key": key_of(inputs), "inputs": inputs, "result": data}


def dumps(kernels: dict[str, Any], post: str) -> str:
    doc = {"format": FORMAT, "post": post, "kernels": dict(sorted(kernels.items()))}
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` in one rename: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would hide it from other users
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # the rename must not land before the data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
