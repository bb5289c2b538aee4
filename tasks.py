"""Invoke tasks for the kernel-module blog: build, serve, test and the sandbox runner."""

from __future__ import annotations

import contextlib
import functools
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from invoke import Context, task
from invoke.exceptions import Exit

if TYPE_CHECKING:
    from kblog.verify import Verification

ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

CONTENT = ROOT / "content"
OUTPUT = ROOT / "output"
SNIPPETS = ROOT / "snippets"
SETTINGS = ROOT / "pelicanconf.py"
PUBLISH_SETTINGS = ROOT / "publishconf.py"
PYTHON = sys.executable


P = ParamSpec("P")
R = TypeVar("R")


def _interruptible(body: Callable[P, R]) -> Callable[P, R]:
    """A task that Ctrl-C ends with "interrupted" and 130: invoke alone exits 1, as if
    the task had failed. The runs it started are torn down as the interrupt unwinds."""

    @functools.wraps(body)
    def task_body(*args: P.args, **kwargs: P.kwargs) -> R:
        from runner import interrupt

        interrupt.catch_sigint()
        try:
            return body(*args, **kwargs)
        except KeyboardInterrupt:
            raise Exit("interrupted", 130) from None

    return task_body


def _build(settings: Path, output: Path, **kwargs):
    from kblog.build import BuildError, build_site

    try:
        return build_site(settings, output, **kwargs)
    except BuildError as exc:
        unchanged = f"{output.name}/ and snippets/ are unchanged"
        raise Exit(f"build failed; {unchanged}:\n\n{exc}", 1) from None


@task
@_interruptible
def build(c, publish=False):
    """Build the site into output/, running every post whose captures are stale."""
    report = _build(PUBLISH_SETTINGS if publish else SETTINGS, OUTPUT)
    for path in report.captures_written:
        print(f"new captures: {path.relative_to(ROOT)}")
    print(f"built {OUTPUT.relative_to(ROOT)}/ ({report.vm_runs} post runs in the sandbox)")


@task
def publish(c: Context) -> None:
    """Build with publishconf.py, never starting a VM, and deploy to the configured target."""
    from kblog.publish import PublishError, PublishSettingsError
    from kblog.publish import publish as publish_site

    try:
        publish_site(PUBLISH_SETTINGS)
    except PublishSettingsError as exc:  # bad settings: one line, before any build
        raise Exit(f"publish: {exc}", 2) from None
    except PublishError as exc:
        raise Exit(f"publish: {exc}", 1) from None


def _kernel_labels(kernel: str) -> list[str] | None:
    """The labels in a --kernel value ("6.1" or "6.1,6.12"); None when it is empty."""
    from runner import config

    labels = [label.strip() for label in kernel.split(",") if label.strip()]
    for label in labels:
        if label not in config.KERNELS:
            known = ", ".join(config.KERNELS)
            raise Exit(f"unknown kernel {label!r}; configured kernels: {known}", 2)
    return list(dict.fromkeys(labels)) or None


@task(
    help={
        "update": "keep the new captures (whole series, pinned kernels)",
        "newest": "run on the newest ABI Debian offers for each kernel series, not the pin",
        "kernel": "only these kernels: labels, comma-separated (e.g. 6.1)",
        "shard": "only share I of N of the post x kernel cells (e.g. 1/2); writes --out",
        "out": "write the outcomes here (default with --shard: build/verify/shard-I-of-N.json)",
        "merge": "print the table and verdict of the shard files in this directory",
        "report": "write the execution report here (HTML; JSON if it ends in .json)",
    }
)
@_interruptible
def verify(
    c: Context,
    update: bool = False,
    newest: bool = False,
    kernel: str = "",
    shard: str = "",
    out: str = "",
    merge: str = "",
    report: str = "",
) -> None:
    """Re-run every post in the sandbox, ignoring captures; --update keeps the new ones.

    Fails on a failed step and on drift from the published captures.
    """
    from kblog import verify as verification

    if merge:
        if update or newest or kernel or shard or out:
            raise Exit(
                "verify --merge takes no other option but --report: the shard files say the rest",
                2,
            )
        try:
            merged = verification.merge(Path(merge))
        except verification.VerifyInputError as exc:
            raise Exit(f"verify: {exc}", 2) from None
        _write_report(report, merged)
        _verdict(merged, update=False)
        return
    from runner import config

    labels = _kernel_labels(kernel)
    try:
        index, count = verification.parse_shard(shard) if shard else (1, 1)
        config.kernels()  # a malformed KBLOG_KERNEL_RELEASES, before anything runs
    except ValueError as exc:  # VerifyInputError too
        raise Exit(f"verify: {exc}", 2) from None
    if update and (shard or newest):
        raise Exit(
            "verify: --update keeps the whole series' captures: drop --shard and --newest", 2
        )
    from kblog import lock

    with contextlib.ExitStack() as stack:
        if newest:
            stack.enter_context(_newest_kernels(labels))
        # --update writes snippets/: alone. Without it, shared: it judges one whole
        # snippets/ (no build's half-written set) and verifications run side by side.
        what = "invoke verify" + " --update" * update
        try:
            stack.enter_context(lock.checkout_lock(ROOT, what, shared=not update))
        except lock.LockError as exc:
            raise Exit(f"verify: {exc}", 1) from None
        plan = verification.plan(SETTINGS, labels)
        cells = verification.share(plan.cells, index, count)
        try:
            part, written = verification.run(plan, cells, update=update, newest=newest)
        except OSError as exc:  # keeping the captures: a full disk, named, no traceback
            raise Exit(f"verify: {exc.filename or 'snippets/'}: {exc.strerror}", 1) from None
    if shard or out:
        path = Path(out) if out else ROOT / "build" / "verify" / f"shard-{index}-of-{count}.json"
        run = verification.run_id(plan.cells, count, part.releases, plan.inputs)
        verification.write_shard(path, verification.shard_document(run, index, count, part))
        print(f"shard {index}/{count}: {len(cells)} of {len(plan.cells)} cells, in {path}")
    _write_report(report, part)
    _verdict(part, update)
    for path in written:
        print(f"updated {path.relative_to(ROOT)}")


@contextlib.contextmanager
def _newest_kernels(labels: list[str] | None) -> Iterator[None]:
    """Run the body on the newest ABIs and linux-source versions, and on the local
    backend (the sandbox image holds the pinned kernels and sources only)."""
    from runner import backends, config
    from runner.kernels import abi as series
    from runner.kernels import debian

    backend = backends.default_name()
    if backend == "docker":
        raise Exit("verify --newest runs on the local backend: set KBLOG_BACKEND=local", 2)
    try:
        releases, sources = series.newest_pins(labels)
    except (debian.PackageError, OSError) as exc:
        raise Exit(f"verify --newest: cannot read Debian's kernel ABIs: {exc}", 1) from None
    with contextlib.ExitStack() as stack:
        if backend == "auto":
            stack.enter_context(config.environment_variable("KBLOG_BACKEND", "local"))
        stack.enter_context(config.releases_override(releases))
        stack.enter_context(config.releases_override(sources, config.SOURCES_ENV))
        yield


def _write_report(path: str, done: Verification) -> None:
    """The execution report of a verification, before its verdict (a failed one too)."""
    if not path:
        return
    from kblog import report

    try:
        report.write(Path(path), done.report(), ROOT / "theme" / "templates")
    except OSError as exc:
        raise Exit(f"verify: --report {path}: {exc.strerror}", 1) from None
    print(f"report: {path}", file=sys.stderr)  # stdout is the table


def _verdict(done: Verification, update: bool) -> None:
    """The table; Exit 1 on a failure, or on drift unless the captures are being updated."""
    if done.newest:
        shown = ", ".join(f"{label} {release}" for label, release in done.releases.items())
        print(f"on the newest Debian ABIs: {shown}")
    print(done.table())
    if done.failed(update):
        raise Exit("verification failed", 1)


@task(
    help={
        "bump": "move the pins in runner/config.py to the newest ABIs",
        "kernel": "only these kernels: labels, comma-separated (e.g. 6.1)",
    }
)
def kernels(c: Context, bump: bool = False, kernel: str = "") -> None:
    """Show each kernel's pinned ABI and the newest Debian offers; --bump moves the pins."""
    from runner.kernels import abi as series
    from runner.kernels import debian

    labels = _kernel_labels(kernel)
    try:
        tracks = series.track(labels)
    except (debian.PackageError, OSError, ValueError) as exc:
        raise Exit(f"kernels: cannot read Debian's kernel ABIs: {exc}", 1) from None
    width = max(len(t.pinned) for t in tracks) + 2
    swidth = max(len(t.source_pinned) for t in tracks) + 2
    print(
        f"{'kernel':8}{'pinned':{width}}{'newest in Debian':{width}}"
        f"{'source pinned':{swidth}}{'newest source':{swidth}}"
    )
    for t in tracks:
        print(
            f"{t.label:8}{t.pinned:{width}}{t.newest or '-':{width}}"
            f"{t.source_pinned:{swidth}}{t.newest_source or '-':{swidth}}{t.note}"
        )
    if not bump:
        if any(t.note != "up to date" for t in tracks):
            print(f"move the pins with `{series.BUMP_COMMAND}`, then `make html` re-captures")
        return
    moved = series.bump({t.label: t.newest for t in tracks if t.newest})
    for label, (old, new) in moved.items():
        print(f"runner/config.py: kernel {label} {old} -> {new}")
    sources = {t.label: t.newest_source for t in tracks if t.newest_source}
    moved_sources = series.bump(sources, field="source")
    for label, (old, new) in moved_sources.items():
        print(f"runner/config.py: kernel {label} source {old} -> {new}")
    if moved or moved_sources:
        print("now `make html` re-captures every post; review `git diff runner/ snippets/`")
    else:
        print("the pins are the newest ABIs and sources already")


def _post_scenario(post: str):
    """The scenario of a post, given as a path or a file name under content/."""
    from kblog.parse import SnippetError, read_post

    path = Path(post) if Path(post).exists() else CONTENT / post
    if not path.exists():
        matches = sorted(CONTENT.glob(f"*{post}*.md"))
        if len(matches) != 1:
            raise Exit(f"no single post matches {post!r} under content/", 2)
        path = matches[0]
    source = str(path.resolve().relative_to(ROOT))
    try:
        return path, read_post(path, source).scenario
    except SnippetError as exc:
        raise Exit(str(exc), 2) from None


@task
@_interruptible
def run(c, post, kernel="", json=False, backend=""):
    """Run one post's snippets in a fresh guest and print what the terminals showed."""
    import json as json_module  # the --json flag shadows the module here
    import tempfile

    from runner import __main__ as runner_cli

    _, scenario = _post_scenario(post)
    # The runner's own command line does the rest (backend, display, run, judge):
    # `invoke run` is `python -m runner` on the post's scenario.
    with tempfile.TemporaryDirectory(prefix="kblog-run-") as tmp:
        path = Path(tmp) / f"{scenario.name}.json"
        path.write_text(json_module.dumps(scenario.to_json()))
        argv = [str(path), *(["--kernel", kernel] if kernel else [])]
        argv += [*(["--json"] if json else []), *(["--backend", backend] if backend else [])]
        status = runner_cli.main(argv)
    if status:
        raise Exit(code=status)


@task
@_interruptible
def reproduce(c, post, kernel="", backend="auto"):
    """Run a post in the sandbox container, step by step, and compare with its captures."""
    from runner import freeze
    from runner.reproduce import reproduce as run_post

    path, scenario = _post_scenario(post)
    try:
        published = freeze.load(SNIPPETS / f"{path.stem}.json")
    except freeze.CapturesFileError as exc:
        raise Exit(f"cannot reproduce {path.name}: {exc}", 2) from None
    try:
        done = run_post(scenario, published, ROOT / "kmod", kernel or None, backend)
    except (RuntimeError, OSError, KeyError) as exc:  # no engine, no QEMU, no kernel...
        raise Exit(f"cannot reproduce {path.name}: {exc}", 2) from None
    print(done.report)
    if not done.ok:
        raise Exit("the post did not reproduce as published", 1)


@task
def clean(c, cache=False):
    """Remove the built site and build/ (never snippets/); --cache: the kernels,
    guest images, snapshots and built kernels kept for every checkout too."""
    from runner import config

    caches = [config.cache_dir(), config.kernel_cache_dir()]  # the same one unless set apart
    paths = [OUTPUT, ROOT / "build"] + (caches if cache else [])
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


@task
def test(c, k="", vm=True):
    """Run ruff and the whole test suite; --no-vm skips the tests that boot a guest."""
    c.run(shlex.join([PYTHON, "-m", "ruff", "check", str(ROOT)]))
    c.run(shlex.join([PYTHON, "-m", "ruff", "format", "--check", str(ROOT)]))
    c.run(shlex.join([PYTHON, "-m", "mypy"]))
    # The slowest tests at the end: where a run's time went, readable from its log
    # (a first run on a new machine is mostly the kernels and the Docker image).
    args = [PYTHON, "-m", "pytest", "--durations=25"]
    if k:
        args += ["-k", k]
    if not vm:
        args += ["-m", "not vm"]
    c.run(shlex.join(args))


@task
def serve(c: Context, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve output/ with live reload, rebuilding when content/ or theme/ change."""
    from livereload import Server

    def rebuild() -> None:
        try:
            _build(SETTINGS, OUTPUT)
        except Exit as exc:  # keep serving the last good build
            print(exc.message, file=sys.stderr)
        except Exception as exc:  # a content error: file:line: message
            print(f"build failed: {exc}", file=sys.stderr)
        else:
            print(f"rebuilt {OUTPUT.relative_to(ROOT)}/")

    rebuild()
    server = Server()
    for watched in (CONTENT, ROOT / "theme", ROOT / "pelicanconf.py"):
        server.watch(str(watched), rebuild)
    server.serve(host=host, port=int(port), root=str(OUTPUT), open_url_delay=None)


@task
def bench(c, runs=3, quick=False, kernel=False):
    """Measure boot, restore, episodes 2 and 3, verify and warm builds (with --kernel,
    also episode 4 beside episode 3, kernels cached; episode 3's kernel and episode 4's
    debug kernel each built clean and rebuilt; and episode 3 alternating with a second
    post that builds the kernel: tens of minutes); write bench/results.json."""
    from bench import measure

    def note(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    results = measure.run(runs=int(runs), quick=quick, kernel_build=kernel, log=note)
    measure.write(results)
    print(measure.table(results))


@task
def image(c: Context, force: bool = False, verbose: bool = False) -> None:
    """Build the docker backend's image, making its Debian base with debootstrap if needed."""
    from runner.backends import docker_image

    ok, why = docker_image.docker_available()
    if not ok:
        raise Exit(f"docker: {why}", 1)
    client = docker_image.connect()
    try:
        tag, built = docker_image.ensure_image(client, force=force, verbose=verbose)
    except RuntimeError as exc:  # a failed build, or no base image to build on
        raise Exit(str(exc), 1) from None
    img = client.images.get(tag)
    state = "built" if built else "up to date"
    label = img.labels.get(docker_image.INPUTS_LABEL)
    size = img.attrs["Size"] / 1e9
    print(f"{tag} {state}: {img.short_id.removeprefix('sha256:')}, {size:.2f} GB, inputs {label}")
