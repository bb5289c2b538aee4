"""docs/architecture.md against the tree, and the import rules it states.

The page names every module and the path a newcomer follows; these tests fail
when a module is added, renamed or removed without the page, and when an import
breaks a rule: a cycle, host-only code pulling in the VM machinery, a reach into
another module's private names.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "architecture.md").read_text()
CODE_DIRS = (ROOT / "runner", ROOT / "plugins", ROOT / "kblog")
NAMED = re.compile(r"\b((?:runner|plugins|kblog)/[\w/]+\.py)\b")


def _modules() -> list[Path]:
    return sorted(p for d in CODE_DIRS for p in d.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_named_in_the_page_exists() -> None:
    named = set(NAMED.findall(DOC))
    assert named, "the page names no module"
    missing = sorted(n for n in named if not (ROOT / n).is_file())
    assert missing == []


def test_every_module_is_on_the_page() -> None:
    named = set(NAMED.findall(DOC))
    unnamed = [
        str(p.relative_to(ROOT)) for p in _modules() if str(p.relative_to(ROOT)) not in named
    ]
    assert unnamed == [], "add them to docs/architecture.md"


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += graph.get(name, ())
    return seen


def _path_of(module: str) -> str:
    path = module.replace(".", "/")
    if module.startswith("kblog_"):
        path = "plugins/" + path
    package = ROOT / path / "__init__.py"
    return str(package.relative_to(ROOT)) if package.is_file() else path + ".py"


def test_the_drawing_is_what_the_build_imports() -> None:
    """The modules the page draws (with the packages it lists under the drawing) are
    exactly those the build reaches from its entry point through imports."""
    drawing, after = DOC.split("```")[1], DOC.split("```")[2].split("\n\n")[1]
    drawn = set(NAMED.findall(drawing)) | {
        f"{package}__init__.py" for package in re.findall(r"\b([\w/]+/)(?=[,)])", after)
    }
    reached = {_path_of(m) for m in _reachable(_graph(), "kblog.build")}
    assert sorted(drawn - reached) == [], "drawn, but the build does not import them"
    assert sorted(reached - drawn) == [], "imported by the build, but not drawn"


# --- imports ------------------------------------------------------------------------


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT / "plugins" if "plugins" in path.parts else ROOT)
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, package: str) -> set[str]:
    """Every module of ours this file imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x / from .x import y
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
                found.update(f"{module}.{a.name}" for a in node.names)
                found.add(module)
            elif node.module:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    names = {_module_name(p): p for p in _modules()}
    graph = {}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = {m for m in _imports(path, package) if m in names and m != name}
    return graph


def test_no_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            # A package importing its own submodules is how packages are made.
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


VM_CODE = {
    "runner.guest.vm",
    "runner.execute",
    "runner.guest.snapshot",
    "runner.guest.qmp",
    "runner.guest.agent_client",
}


@pytest.mark.parametrize(
    "module",
    [
        "runner.backends.docker",
        "runner.backends.docker_image",
        "runner.reproduce",
        "runner.__main__",
        "runner.display",
    ],
)
def test_host_only_code_imports_no_vm_code(module: str) -> None:
    probe = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert VM_CODE.isdisjoint(out), sorted(VM_CODE & set(out))


def test_no_reach_into_another_module_s_private_names() -> None:
    graph_names = {_module_name(p) for p in _modules()}
    offenders = []
    for path in _modules():
        tree = ast.parse(path.read_text())
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        offenders.append(
                            f"{path.relative_to(ROOT)}: from {node.module} import {alias.name}"
                        )
                    full = f"{node.module}.{alias.name}"
                    if full in graph_names:
                        aliases[alias.asname or alias.name] = full
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in graph_names:
                        aliases[alias.asname or alias.name] = alias.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                offenders.append(
                    f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr}"
                )
    assert offenders == []
