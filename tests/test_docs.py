"""The README and the documentation site: the README's first commands, its links into docs/, and
``mkdocs build --strict`` (MkDocs itself judges the site's links and pages)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# [text](target) and ![alt](target), not inside code spans or blocks (removed first).
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _prose(markdown: str) -> str:
    """The Markdown without fenced blocks and code spans, where brackets are not links."""
    without_fences = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", without_fences)


def _github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(markdown: Path) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", _prose_keep_code(markdown.read_text()), flags=re.M)
    return {_github_anchor(h) for h in headings}


def _prose_keep_code(markdown: str) -> str:
    # Headings may hold code spans (`make demo`); only the fenced blocks hide `#` comments.
    return re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)


def test_readme_starts_with_make_demo_and_make_test() -> None:
    """The project's rule and CI: the README's first two commands are `make demo`, `make test`."""
    block = re.search(r"^```bash\n(.*?)^```", README.read_text(), flags=re.S | re.M)
    assert block, "README.md has no bash block"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert commands[:2] == ["make demo", "make test"], commands


def test_readme_links_resolve() -> None:
    """Every relative link of the README names a file of the repository, and its #anchor a
    heading of that file (GitHub's anchors, the way the README is read)."""
    broken = []
    for target in _LINK.findall(_prose(README.read_text())):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (ROOT / path).resolve() if path else README
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and anchor not in _anchors(file):
            broken.append(f"{target}: no heading with anchor #{anchor} in {path or 'README.md'}")
    assert not broken, "README.md: " + "; ".join(broken)


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    """`make docs`'s build: a broken link, a missing page or a page left out of the nav fails."""
    try:
        import material  # noqa: F401
        import mkdocs  # noqa: F401
    except ImportError as missing:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            f"the 'docs' extra is not installed ({missing.name}): pip install -e '.[docs]'"
        )
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "learn" / "index.html").exists()
