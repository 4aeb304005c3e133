"""docs/OPTIONS.md is the schema's own text: regenerate it when the schema changes."""

from __future__ import annotations

from pathlib import Path

from lptn.engine.option_docs import render
from lptn.platform.option_schema import OPTIONS

DOC = Path(__file__).resolve().parents[2] / "docs" / "OPTIONS.md"


def test_options_doc_is_up_to_date() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/OPTIONS.md is out of date: python -m lptn.engine.option_docs > docs/OPTIONS.md"
    )


def test_every_top_level_key_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name in OPTIONS.keys:
        assert f"| `{name}` |" in text
