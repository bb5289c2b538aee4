"""Every program the project starts comes from a package that its own files install.

The programs are found in the sources (argv lists passed to subprocess and
friends, names given to shutil.which, module-level *_ARGV lists) plus the tools
the module and kernel builds call, which no Python source names. Each is resolved
on this machine and mapped to its Debian package with `dpkg -S`; that package
must be in the set of runner/host-packages.txt that the command needing it
installs, in Debian's essential set, or a dependency of one of those. A program
the build starts must come from the `make html` set (the tools of a post's build
steps, from the Docker image's set); one that only the tests (or
`invoke publish`, which tests start) start, from the `make test` set. A new
`subprocess.run(["newtool", ...])` without its package in the right set fails
here, on any machine that has already installed the tool by hand.
"""

from __future__ import annotations

import ast
import itertools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner import host_packages

ROOT = Path(__file__).resolve().parent.parent
# Host-side code; runner/guest/agent/ runs in the guest, whose packages config.py names.
SCANNED = [
    ROOT / "runner",
    ROOT / "kblog",
    ROOT / "plugins",
    ROOT / "tasks.py",
    ROOT / "bench",
    ROOT / "tests",
]
GUEST_SIDE = ROOT / "runner" / "guest" / "agent"
# Host-side sources that `make html` never runs: what they start may come from the
# `make test` set. Everything else scanned counts as the build's.
NOT_BUILT = {
    ROOT / "tests": "the tests, which `make test` runs",
    ROOT / "kblog" / "publish.py": "`invoke publish`, and its tests",
}
# Calls whose first argument is an argv (or, for which, a program name).
SPAWNERS = {"run", "Popen", "check_output", "check_call", "call", "_run", "_apt", "which"}
ARGV_NAME = re.compile(r"(ARGV|argv)$")

# Programs that no Python source names: kbuild and the module Makefiles call them.
# Those of a post's build steps run in the Docker image as well as on a host, so
# they must come from the image's set; npm only runs for `make html`.
BUILD_TOOLS = {
    "make": ("image", "the post's build steps"),
    "gcc-12": ("image", "kbuild of Debian 12's kernels (.kernelvariables names it)"),
    "ld": ("image", "kbuild links modules"),
    "pahole": ("image", "BTF for modules of 6.12 (kmod/*/Makefile)"),
    "bash": ("image", "the build steps' shell"),
    "uname": ("image", "KDIR in kmod/*/Makefile"),
    "bc": ("image", "kbuild of a guest kernel from source (runner/kernels/build.py)"),
    "bison": ("image", "kbuild of a guest kernel from source (runner/kernels/build.py)"),
    "flex": ("image", "kbuild of a guest kernel from source (runner/kernels/build.py)"),
    "rsync": ("image", "kbuild's headers_install (episode 3's build steps)"),
    "xz": ("image", "tar -xJ of linux-source's tarball (runner/kernels/source.py)"),
    "npm": ("html", "the Makefile's `npm ci` of package.json (the replay player the build copies)"),
}


def _python_files() -> Iterator[Path]:
    for base in SCANNED:
        paths = [base] if base.is_file() else sorted(base.rglob("*.py"))
        for path in paths:
            if GUEST_SIDE not in path.parents:
                yield path


def _first_word(node: ast.AST) -> str | None:
    if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
        node = node.elts[0]
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.split("/")[-1] if node.value.startswith("/") else node.value
    return None


def programs_in(tree: ast.AST) -> set[str]:
    """The programs one module starts, as far as its source names them."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in SPAWNERS and (word := _first_word(node.args[0])):
                found.add(word)
        elif isinstance(node, ast.Assign) and isinstance(node.value, (ast.List, ast.Tuple)):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if any(ARGV_NAME.search(n) for n in names) and (word := _first_word(node.value)):
                found.add(word)
    return found


def _built(path: Path) -> bool:
    return not any(path == other or other in path.parents for other in NOT_BUILT)


def _all_programs() -> dict[str, tuple[str, str]]:
    """{program: (the set that must provide it, where it is started from)}.

    A program that the build starts anywhere needs the `html` set, even if a test
    starts it too; one started only outside the build, the `test` set.
    """
    found = dict(BUILD_TOOLS)
    for path in _python_files():
        where = ("html" if _built(path) else "test", str(path.relative_to(ROOT)))
        for program in programs_in(ast.parse(path.read_text(), str(path))):
            if found.get(program, ("test", ""))[0] == "test" and where[0] == "html":
                found[program] = where
            else:
                found.setdefault(program, where)
    return found


def _installed() -> dict[str, tuple[bool, list[list[str]], list[str]]]:
    """{package: (essential, dependency groups, provides)} for installed packages."""
    fmt = "${Package}\\t${Status}\\t${Essential}\\t${Pre-Depends}, ${Depends}\\t${Provides}\\n"
    out = subprocess.run(["dpkg-query", "-W", "-f", fmt], capture_output=True, text=True).stdout
    table = {}
    for line in out.splitlines():
        pkg, status, essential, depends, provides = line.split("\t")
        if not status.endswith(" installed"):
            continue
        groups = [
            [alt.split()[0].split(":")[0] for alt in group.split("|") if alt.strip()]
            for group in depends.split(",")
            if group.strip()
        ]
        table[pkg] = (essential == "yes", groups, [p.split()[0] for p in provides.split(",") if p])
    return table


def _allowed_packages(
    table: dict[str, tuple[bool, list[list[str]], list[str]]], set_name: str
) -> set[str]:
    """The packages of one set of the list, the essential ones, and all they depend on."""
    providers: dict[str, set[str]] = {}
    for pkg, (_, _, provides) in table.items():
        for virtual in provides:
            providers.setdefault(virtual, set()).add(pkg)
    listed = host_packages.listed(set_name)  # a package left out where its program is
    todo = [*listed, *(p for p, (ess, _, _) in table.items() if ess)]
    seen: set[str] = set()
    while todo:
        pkg = todo.pop()
        if pkg in seen:
            continue
        seen.add(pkg)
        for group in table.get(pkg, (False, [], []))[1]:
            for alt in group:
                todo += [alt] if alt in table else sorted(providers.get(alt, ()))
    return seen


# Debian's own directories: what a new machine has comes from its packages, and a
# tool installed by hand under /usr/local or ~ must not stand in for one.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def _package_of(program: str) -> str:
    path = shutil.which(program, path=SYSTEM_PATH)
    assert path is not None, f"{program} is not installed: which package provides it?"
    real = os.path.realpath(path)
    candidates = [path, real]
    # Merged /usr: dpkg may have recorded /bin/x for what PATH finds as /usr/bin/x.
    for p in (path, real):
        candidates.append(p.removeprefix("/usr") if p.startswith("/usr/") else "/usr" + p)
    for candidate in candidates:
        proc = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if proc.returncode == 0:
            return proc.stdout.split(":")[0].split(",")[0].strip()
    raise AssertionError(f"{program} ({path}) belongs to no Debian package")


def test_the_scan_finds_the_known_programs() -> None:
    """If the scan stopped seeing argv lists, the test below would pass on nothing."""
    found = _all_programs()
    for program in ("depmod", "cpio", "mkfs.ext4", "qemu-system-x86_64", "setpriv", "bwrap"):
        assert found.get(program, ("", ""))[0] == "html", f"{program}: not seen as the build's"
    # ...and the test-only programs as the tests', or the split would check nothing.
    for program in ("chromium", "dockerd", "git"):
        assert found.get(program, ("", ""))[0] == "test", f"{program}: not seen as tests'"
    assert len(found) >= 15


def test_the_build_set_leaves_out_what_only_tests_use() -> None:
    """`make html` must not install the browser, the Docker engine or publishing tools."""
    html = _ALLOWED["html"]
    assert {"chromium", "docker.io", "git"}.isdisjoint(html), sorted(
        {"chromium", "docker.io", "git"} & html
    )
    assert _ALLOWED["html"] < _ALLOWED["test"]


def test_not_built_names_existing_sources() -> None:
    """A stale entry would let a moved build module's programs pass as the tests'."""
    for path in NOT_BUILT:
        assert path.exists(), f"NOT_BUILT names {path.relative_to(ROOT)}, which is gone"


def test_scan_sees_a_new_subprocess_call() -> None:
    source = 'import subprocess\nsubprocess.run(["newtool", "--flag"], check=True)\n'
    assert "newtool" in programs_in(ast.parse(source))


@pytest.mark.parametrize("program", sorted(_all_programs()))
def test_program_comes_from_a_listed_package(program: str) -> None:
    set_name, where = _all_programs()[program]
    package = _package_of(program)
    roles = " ".join(host_packages.SETS[set_name])
    assert package in _ALLOWED[set_name], (
        f"{program} (started by {where}) comes from Debian's {package}, which the "
        f"{set_name} set of runner/host-packages.txt (roles {roles}) does not "
        f"name, nor any package it depends on"
    )


def test_every_listed_package_is_installed() -> None:
    table = _installed()
    missing = [pkg for pkg in host_packages.packages() if pkg not in table]
    assert missing == [], f"listed but not installed (run make): {missing}"


def test_the_image_and_bundle_take_the_list() -> None:
    dockerfile = (ROOT / "runner" / "Dockerfile").read_text()
    assert "$RUNNER_PACKAGES" in dockerfile
    image = (ROOT / "runner" / "backends" / "docker_image.py").read_text()
    assert 'host_packages.packages("image")' in image
    for pkg in ("qemu-system-x86", "busybox-static", "kmod"):
        assert not re.search(rf"^\s+.*\b{re.escape(pkg)}\b", dockerfile, re.M), (
            f"the Dockerfile names {pkg} itself; it takes the list as RUNNER_PACKAGES"
        )
    readme = (ROOT / "plugins" / "kblog_snippets" / "bundle-README.txt").read_text()
    assert "runner/install-host-packages.sh bundle" in readme


def test_malformed_list_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "host-packages.txt"
    bad.write_text("# comment\nqemu-system-x86 runner\nkmod sometimes\n")
    with pytest.raises(host_packages.PackageListError, match=r"host-packages.txt:3:"):
        host_packages.read(bad)


def test_a_package_is_left_out_where_its_program_is(tmp_path: Path) -> None:
    """npm: Debian's where the machine has none, the machine's own where it has one."""
    listed = tmp_path / "host-packages.txt"
    listed.write_text("python3 runner\nnodejs build unless=npm\nnpm build unless=npm\n")

    def has(programs: set[str]):
        return lambda program: f"/usr/bin/{program}" if program in programs else None

    assert host_packages.packages("html", path=listed, present=has(set())) == [
        "python3",
        "nodejs",
        "npm",
    ]
    assert host_packages.packages("html", path=listed, present=has({"npm"})) == ["python3"]
    assert host_packages.listed("html", path=listed) == ["python3", "nodejs", "npm"]
    for bad in ("npm build unless=", "npm build if=npm"):
        listed.write_text(bad + "\n")
        with pytest.raises(host_packages.PackageListError, match=r"host-packages.txt:1:"):
            host_packages.read(listed)


def test_each_make_command_installs_its_set() -> None:
    """`make -n -B` prints what each target would run, without running it."""
    for target in ("html", "test"):
        proc = subprocess.run(
            ["make", "-n", "-B", "-C", str(ROOT), target], capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        installs = re.findall(r"^sh runner/install-host-packages\.sh (.*)$", proc.stdout, re.M)
        assert installs == [target], f"make {target} installs {installs}"
        extras = re.findall(r"pip install --quiet -e '(.*)'$", proc.stdout, re.M)
        assert extras == [".[test]" if target == "test" else "."], extras
        # The page's player: from package-lock.json, exactly, for the site and its tests.
        assert re.findall(r"^npm (ci\b.*)$", proc.stdout, re.M) == [
            "ci --ignore-scripts --no-audit --no-fund"
        ], proc.stdout


def test_sets_nest_and_name_known_roles() -> None:
    sets = [set(host_packages.roles_of(name)) for name in ("image", "bundle", "html", "test")]
    assert all(a < b for a, b in itertools.pairwise(sets)), sets
    assert sets[-1] == set(host_packages.ROLES)
    with pytest.raises(ValueError, match="unknown role or set"):
        host_packages.packages("htlm")


_TABLE = _installed()
_ALLOWED = {name: _allowed_packages(_TABLE, name) for name in ("image", "html", "test")}
