"""Which ABIs, and which versions of its linux-source, Debian offers for each
configured kernel series, and moving the pins.

A label in config.KERNELS ("6.1") stands for a series: every ABI Debian publishes
for it (linux-image-6.1.0-N-amd64-unsigned). Debian has spelled ABIs two ways,
and each pinned release says which one its series uses:

    6.1.0-56-amd64         X.Y.0-ABI-FLAVOUR        (bookworm's own kernel)
    6.12.107+deb12-amd64   X.Y.ABI+debN-FLAVOUR     (newer kernels built for bookworm)

The answers come from apt's package lists, refreshed when missing or a day old.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runner import config
from runner.kernels import debian

CONFIG_FILE = Path(config.__file__).resolve()
BUMP_COMMAND = "invoke kernels --bump"

_SCHEMES = (
    re.compile(r"(?P<head>\d+\.\d+\.0-)(?P<abi>\d+)(?P<tail>-[a-z0-9-]+)"),
    re.compile(r"(?P<head>\d+\.\d+\.)(?P<abi>\d+)(?P<tail>\+deb\d+-[a-z0-9-]+)"),
)


@dataclass(frozen=True)
class Series:
    """The releases of one configured kernel: `head` ABI `tail`, as in 6.1.0-`56`-amd64."""

    label: str
    head: str
    tail: str

    def release(self, abi: int) -> str:
        return f"{self.head}{abi}{self.tail}"

    def abi(self, release: str) -> int | None:
        """The ABI number of `release`, or None if it is not of this series."""
        m = re.fullmatch(re.escape(self.head) + r"(\d+)" + re.escape(self.tail), release)
        return int(m.group(1)) if m else None


def series(kernel: config.Kernel) -> Series:
    """The series a configured kernel's release belongs to; ValueError if unrecognised."""
    for scheme in _SCHEMES:
        m = scheme.fullmatch(kernel.release)
        if m and kernel.release.startswith(f"{kernel.name}."):
            return Series(kernel.name, m["head"], m["tail"])
    raise ValueError(
        f"kernel {kernel.name}: {kernel.release!r} is not a Debian kernel ABI "
        "this project knows how to track (6.1.0-N-amd64 or 6.12.N+debN-amd64)"
    )


def _posix(text: str) -> str:
    """`text` as a literal in a POSIX extended regular expression (apt's syntax)."""
    return re.sub(r"([.+*?^$()\[\]{}|\\])", r"\\\1", text)


def offered(kernel: config.Kernel, refresh: bool = True) -> list[str]:
    """The releases of `kernel`'s series that apt's lists offer, oldest first.

    Only those whose image and headers packages are both there: a run needs both.
    """
    s = series(kernel)
    if refresh:
        debian.refresh_lists()
    probe = config.Kernel(s.label, s.release(0))
    # The package names around the release stay as config.Kernel spells them.
    wrappers = [
        package.partition(probe.release)[::2]
        for package in (probe.image_package, probe.headers_package)
    ]
    # One search for both kinds: each search reads all of apt's lists (about a second).
    alternatives = "|".join(
        f"{_posix(before + s.head)}[0-9]+{_posix(s.tail + after)}" for before, after in wrappers
    )
    names = debian.names_matching(f"^({alternatives})$")
    found: list[set[int]] = []
    for before, after in wrappers:
        abis = set()
        for name in names:
            if name.startswith(before) and name.endswith(after):
                abi = s.abi(name[len(before) : len(name) - len(after)])
                if abi is not None:
                    abis.add(abi)
        found.append(abis)
    return [s.release(abi) for abi in sorted(set.intersection(*found))]


def newest(kernel: config.Kernel, refresh: bool = True) -> str | None:
    """The newest release of `kernel`'s series in apt's lists (None if there is none)."""
    releases = offered(kernel, refresh)
    return releases[-1] if releases else None


class KernelGone(debian.PackageError):
    """A configured kernel's package is not in Debian's lists any more."""

    def __init__(self, kernel: config.Kernel, package: str, newest: str | None) -> None:
        self.kernel, self.package, self.newest = kernel, package, newest
        where = (
            f"the newest {kernel.name} ABI Debian offers is {newest}: "
            f"move the pin with `{BUMP_COMMAND}`"
            if newest
            else f"Debian's lists offer no other {kernel.name} ABI"
        )
        super().__init__(
            f"Debian no longer offers {package}: kernel {kernel.name} is pinned to "
            f"{kernel.release}; {where}"
        )


def gone(kernel: config.Kernel, package: str) -> KernelGone:
    """The error for `kernel` whose `package` apt does not have, with the series' newest
    ABI (apt-get update has just run: debian.show refreshes before it gives up)."""
    try:
        latest = newest(kernel, refresh=False)
    except (debian.PackageError, ValueError, OSError):
        latest = None  # the error still says what is missing
    return KernelGone(kernel, package, latest)


@dataclass(frozen=True)
class Track:
    """A configured kernel's pins next to what Debian offers for its series: the ABI,
    and the version of the linux-source package that posts building the kernel use."""

    label: str
    pinned: str
    offered: tuple[str, ...]  # oldest first
    source_pinned: str = ""
    sources_offered: tuple[str, ...] = ()  # newest first, as apt lists them

    @property
    def newest(self) -> str | None:
        return self.offered[-1] if self.offered else None

    @property
    def newest_source(self) -> str | None:
        return self.sources_offered[0] if self.sources_offered else None

    @property
    def note(self) -> str:
        notes = []
        if not self.offered:
            notes.append("Debian offers no ABI")
        elif self.pinned not in self.offered:
            notes.append(f"ABI pin gone from Debian: `{BUMP_COMMAND}`")
        elif self.newest != self.pinned:
            notes.append("a newer ABI is out")
        if not self.sources_offered:
            notes.append("Debian offers no source")
        elif self.source_pinned not in self.sources_offered:
            notes.append(f"source pin gone from Debian: `{BUMP_COMMAND}`")
        elif self.newest_source != self.source_pinned:
            notes.append("a newer source is out")
        return "; ".join(notes) or "up to date"


def track(labels: list[str] | None = None) -> list[Track]:
    """Each pinned kernel in `labels` (all by default) and its series' ABIs in apt's lists."""
    debian.refresh_lists()
    out = []
    for label in labels or list(config.KERNELS):
        pinned = config.KERNELS[label]
        out.append(
            Track(
                label,
                pinned.release,
                tuple(offered(pinned, refresh=False)),
                pinned.source,
                tuple(debian.versions(pinned.source_package)),
            )
        )
    return out


def newest_releases(labels: list[str] | None = None) -> dict[str, str]:
    """label -> the newest release Debian offers for it (a series with none keeps its pin)."""
    return {t.label: t.newest or t.pinned for t in track(labels)}


def newest_pins(labels: list[str] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """The newest releases and the newest source versions Debian offers, by label (a
    series with none keeps its pin)."""
    tracks = track(labels)
    releases = {t.label: t.newest or t.pinned for t in tracks}
    return releases, {t.label: t.newest_source or t.source_pinned for t in tracks}


def rewrite_pins(source: str, releases: Mapping[str, str], field: str = "release") -> str:
    """config.py's text with the `release=` (or another `field`) of each labelled
    Kernel(...) in KERNELS replaced; everything else, comments and layout included,
    kept byte for byte."""
    tree = ast.parse(source)
    spans: dict[str, ast.Constant] = {}
    for statement in tree.body:
        target: ast.expr | None = None
        if isinstance(statement, ast.AnnAssign):
            target = statement.target
        elif isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target = statement.targets[0]
        if not (isinstance(target, ast.Name) and target.id == "KERNELS"):
            continue
        for call in ast.walk(statement):
            if not isinstance(call, ast.Call):
                continue
            args = {kw.arg: kw.value for kw in call.keywords}
            name, release = args.get("name"), args.get(field)
            if isinstance(name, ast.Constant) and isinstance(release, ast.Constant):
                spans[str(name.value)] = release
    missing = sorted(set(releases) - set(spans))
    if missing:
        raise ValueError(f"no Kernel(name=..., {field}=...) for {', '.join(missing)} in KERNELS")
    lines = source.splitlines(keepends=True)
    # Right to left within a line, bottom to top: earlier offsets stay valid.
    order = sorted(releases, key=lambda k: (spans[k].lineno, spans[k].col_offset), reverse=True)
    for label in order:
        const = spans[label]
        if const.end_lineno != const.lineno or const.end_col_offset is None:
            raise ValueError(f"kernel {label}: its release spans lines; edit it by hand")
        line = lines[const.lineno - 1].encode()  # ast offsets count UTF-8 bytes
        new = line[: const.col_offset] + _quoted(releases[label]) + line[const.end_col_offset :]
        lines[const.lineno - 1] = new.decode()
    return "".join(lines)


def _quoted(text: str) -> bytes:
    return ('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"').encode()


def bump(
    releases: Mapping[str, str], path: Path = CONFIG_FILE, field: str = "release"
) -> dict[str, tuple[str, str]]:
    """Rewrite the pins of `field` (`release`, or `source`) in `path` (config.py);
    label -> (old, new) for those that moved."""
    moved = {
        label: (getattr(config.KERNELS[label], field), release)
        for label, release in releases.items()
        if getattr(config.KERNELS[label], field) != release
    }
    if moved:
        new = {k: version for k, (_, version) in moved.items()}
        path.write_text(rewrite_pins(path.read_text(), new, field))
    return moved
