"""A tiny site of its own for a test: content/, a link to kmod/, snippets/, output/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POSTS = Path(__file__).resolve().parent / "snippets" / "posts"


@dataclass
class MiniSite:
    root: Path

    @property
    def content(self) -> Path:
        return self.root / "content"

    @property
    def snippets(self) -> Path:
        return self.root / "snippets"

    @property
    def output(self) -> Path:
        return self.root / "output"

    def add(self, name: str, text: str | None = None) -> Path:
        path = self.content / name
        path.write_text(text if text is not None else (POSTS / name).read_text())
        return path

    def build(self, **kwargs):
        from kblog_build import build_site

        overrides = {
            "PATH": str(self.content),
            "KBLOG_KERNELS": ["6.1"],
            "SERIES": {},
            "CACHE_CONTENT": False,
            "LOAD_CONTENT_CACHE": False,
        }
        overrides.update(kwargs.pop("overrides", {}))
        return build_site(ROOT / "pelicanconf.py", self.output, overrides, **kwargs)


def tree_bytes(path: Path) -> dict[str, bytes]:
    """Every file under `path` with its content: equal means byte for byte the same."""
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}
