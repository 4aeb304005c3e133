"""lptn.serve sits beside lptn.engine: it may import platform, the middle packages and photo,
never the engine (whose CLI may import serve); the web framework only where it is used."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Tuple

SERVE = Path(__file__).resolve().parents[2] / "lptn" / "serve"
ALLOWED = {"platform", "registry", "archs", "data", "losses", "metrics", "models", "inference"}
ALLOWED |= {"photo", "serve"}
FRAMEWORK = ("starlette", "uvicorn", "h11", "multipart", "python_multipart")
# The modules built on the framework; only the command imports them, after the extra check.
FRAMEWORK_MODULES = {"app", "upload", "http_protocol"}


def imports(path: Path) -> Iterator[Tuple[int, str, bool]]:
    """(line, module, at module level) for each import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module, id(node) in top
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, id(node) in top


def test_serve_imports_no_engine() -> None:
    wrong = [
        f"{path.name}:{line}: {name}"
        for path in sorted(SERVE.rglob("*.py"))
        for line, name, _ in imports(path)
        if name.startswith("lptn.") and name.split(".")[1] not in ALLOWED
    ]
    assert not wrong, "lptn.serve imports outside its layer:\n" + "\n".join(wrong)


def test_framework_imported_only_by_the_app_or_after_the_extra_check() -> None:
    # Importing lptn.serve (and the command, to print its error) must work without the extra.
    wrong = [
        f"{path.name}:{line}: {name}"
        for path in sorted(SERVE.rglob("*.py"))
        if path.stem not in FRAMEWORK_MODULES
        for line, name, top in imports(path)
        if top
        and (
            name.split(".")[0] in FRAMEWORK
            or name.startswith("lptn.serve.")
            and name.split(".")[2] in FRAMEWORK_MODULES
        )
    ]
    assert not wrong, "framework imported at module level:\n" + "\n".join(wrong)
