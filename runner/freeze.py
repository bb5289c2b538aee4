"""Frozen captures: snippets/<post>.json, one human-diffable file per post. This
module is the only one that writes and reads that format (a bundle's captures.json
is the same file).

Each kernel's capture is stored with the key it was made under: a hash of the
post's scenario, the kmod/ sources, the kernel, and the runner sources (the guest
image recipe among them) that shape a capture. A capture whose key still
matches is reused without a VM.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner import config, runner_digest, sources
from runner.kernels import source as kernel_source
from runner.scenario import Scenario, ScenarioResult

# 2: each session's recording (its output in time, for the replay) is kept, as
# base64 of gzipped JSON: it is large, repetitive and no one reads it in a diff.
# A file of format 1 has none: it still reads, and its captures are stale (the
# format is one of a capture's key inputs), so they are made again.
FORMAT = 2
READABLE = (1, FORMAT)
TEXT_FIELDS = ("output",)  # stored as lists of lines, so diffs read line by line


def tree_inputs(kmod: Path) -> dict[str, str]:
    """The inputs every post shares: hashes of kmod/, of kernel/ beside it (the built
    guest kernel's config) and of the runner (guest recipe included)."""
    return {
        "kmod": sources.tree_digest(kmod),
        "kernel_config": sources.tree_digest(config.kernel_dir_for(kmod)),
        "runner": runner_digest(),
    }


def key_inputs(
    scenario: Scenario, kernel: config.Kernel, shared: dict[str, str], digest: str = ""
) -> dict[str, str]:
    """What one post's capture on one kernel depends on; `shared` from tree_inputs(),
    `digest` the scenario's (made here if not given: a post asks once per kernel).
    Only a post that builds the kernel depends on kernel/ and the source's version."""
    inputs = {
        "scenario": digest or scenario.digest(),
        "kernel": kernel.release,
        "format": str(FORMAT),
        **shared,
    }
    if scenario.builds_kernel:
        inputs["kernel_source"] = f"{kernel.source_package} {kernel_source.version(kernel)}"
    else:
        inputs.pop("kernel_config", None)
    return inputs


def key_of(inputs: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:20]


class CapturesFileError(ValueError):
    """A captures file that cannot be read as one: names the file and what is wrong."""


@dataclass(frozen=True)
class Entry:
    """One kernel's capture as stored: its key, what the key was made of, the run."""

    key: str
    inputs: dict[str, str]
    result: ScenarioResult


def load(path: Path) -> dict[str, Entry]:
    """The file's captures by kernel label ({} when there is no file yet)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    return loads(text, path)


def loads(text: str, path: Path) -> dict[str, Entry]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CapturesFileError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") not in READABLE:
        found = data.get("format") if isinstance(data, dict) else None
        raise CapturesFileError(
            f"{path}: format {found!r}, this runner reads formats {', '.join(map(str, READABLE))}"
        )
    entries = {}
    kernels = data.get("kernels") or {}
    if not isinstance(kernels, dict):
        raise CapturesFileError(f"{path}: its kernels are a {type(kernels).__name__}, not a table")
    for label, raw in kernels.items():
        try:
            entries[label] = Entry(str(raw["key"]), dict(raw["inputs"]), _result(raw["result"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CapturesFileError(
                f"{path}: the capture for kernel {label} is malformed ({type(exc).__name__}: {exc})"
            ) from None
    return entries


def _result(stored: dict[str, Any]) -> ScenarioResult:
    """The run as stored, `stored` left as it was (new dicts where fields change)."""
    steps = [
        {
            **step,
            **{name: "\n".join(step[name]) for name in TEXT_FIELDS if isinstance(step[name], list)},
        }
        for step in stored["steps"]
    ]
    recordings = {
        name: {**rec, "events": unpack_recording(rec["events"])}
        for name, rec in stored.get("recordings", {}).items()
    }
    return ScenarioResult.from_json({**stored, "steps": steps, "recordings": recordings})


def unpack_recording(packed: str) -> list[list[float | str]]:
    """The events pack_recording stored; ValueError if they are not that."""
    try:
        events = json.loads(gzip.decompress(base64.b64decode(packed, validate=True)))
    except (OSError, EOFError) as exc:  # not gzip, or cut short
        raise ValueError(f"a recording is not gzipped JSON: {exc}") from None
    if not isinstance(events, list):
        raise ValueError("a recording is not a list of events")
    return events


def pack_recording(events: list[list[float | str]]) -> str:
    """A recording's events as stored: gzipped JSON in base64, the same bytes for the
    same events (no time in the gzip header), so an unchanged capture diffs as none."""
    raw = json.dumps(events, ensure_ascii=False, separators=(",", ":")).encode()
    return base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode()


def make_entry(inputs: dict[str, str], result: ScenarioResult) -> Entry:
    return Entry(key_of(inputs), inputs, result)


def _stored(entry: Entry) -> dict[str, Any]:
    data = entry.result.to_json()
    for step in data["steps"]:
        for name in TEXT_FIELDS:
            step[name] = step[name].split("\n")
    data["recordings"] = {
        name: {**rec, "events": pack_recording(rec["events"])}
        for name, rec in sorted(data["recordings"].items())
    }
    return {"key": entry.key, "inputs": entry.inputs, "result": data}


def dumps(entries: dict[str, Entry], post: str) -> str:
    kernels = {label: _stored(entries[label]) for label in sorted(entries)}
    doc = {"format": FORMAT, "post": post, "kernels": kernels}
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def write_atomic_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data` in one rename, the data on disk before the rename."""
    write_all_atomic({path: data})


def write_all_atomic(files: dict[Path, bytes]) -> None:
    """Replace every file of `files` or none: each is written in full under a temporary
    name first, and only then are they renamed into place (a rename needs no space).
    A failed write (a full disk) raises OSError naming the file, leaves every file as
    it was and no temporary one behind."""
    written: dict[Path, Path] = {}
    try:
        for path, data in files.items():
            written[path] = _write_temporary(path, data)
        for path, tmp in written.items():
            os.replace(tmp, path)
    finally:
        for tmp in written.values():
            tmp.unlink(missing_ok=True)


def _write_temporary(path: Path, data: bytes) -> Path:
    """`data` in a new file beside `path`, on disk (fsynced): the rename must not land
    before the data."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would hide it from other users
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as exc:
        Path(name).unlink(missing_ok=True)
        if isinstance(exc, OSError):  # a write's error names no file: name the one meant
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    return Path(name)
