"""Imports in lptn run one way: platform <- (archs, data, losses, metrics, models, inference,
photo) <- engine. A module that imports upward fails here with its name and the import."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Tuple

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lptn"
MIDDLE = ("archs", "data", "losses", "metrics", "models", "inference", "photo", "video")


def _lptn_imports(path: Path) -> Iterator[Tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from lptn import x` imports lptn.x; `from lptn.a import b` imports from lptn.a.
            names = (
                [f"lptn.{a.name}" for a in node.names] if node.module == "lptn" else [node.module]
            )
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            if name == "lptn" or name.startswith("lptn."):
                yield node.lineno, name


def _subpackage(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize("layer", ["platform", *MIDDLE])
def test_imports_run_one_way(layer: str) -> None:
    allowed = {"platform", "registry"} if layer == "platform" else {"platform", "registry", *MIDDLE}
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: imports {name}"
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        for line, name in _lptn_imports(path)
        if _subpackage(name) not in allowed
    ]
    assert not wrong, "upward imports:\n" + "\n".join(wrong)
