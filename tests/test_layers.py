"""Imports run one way (docs/architecture.md): config at the bottom, the pure core above it,
the BusItem protocol (venus/) a leaf of its own, the shell on top."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "aggbatt"


def imports(path: Path) -> set[str]:
    """The aggbatt modules a file imports (at any level, lazy imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aggbatt"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("aggbatt"))
    return found


def modules(folder: str) -> list[Path]:
    return sorted((SRC / folder).glob("*.py")) if folder else [SRC / "config.py"]


def test_config_imports_only_a_leaf_helper() -> None:
    assert imports(SRC / "files.py") == set()
    assert imports(SRC / "config.py") <= {"aggbatt.files", "aggbatt.files.read_bounded"}


def test_the_core_imports_only_the_core_and_the_config() -> None:
    for path in modules("core"):
        bad = {
            m for m in imports(path)
            if not m.startswith(("aggbatt.core", "aggbatt.config"))
        }  # fmt: skip
        assert bad == set(), f"{path.name} imports {bad}"


def test_venus_is_a_leaf() -> None:
    for path in modules("venus"):
        bad = {m for m in imports(path) if not m.startswith("aggbatt.venus")}
        assert bad == set(), f"venus/{path.name} imports {bad}"


def test_comments_cite_only_what_is_in_the_repository() -> None:
    """A newcomer with a clone alone can follow every reference in the source."""
    root = SRC.parents[1]
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for outside in ("field notes", "shared/docs", "shared/recordings", "../shared"):
            assert outside not in text, f"{path.relative_to(root)} cites {outside!r}"
        for cited in re.findall(r"\b((?:docs|tests|bench)/[\w/.-]+\.(?:md|py|json))", text):
            assert (root / cited).exists(), f"{path.relative_to(root)} cites {cited}"
