from __future__ import annotations

from pathlib import Path

from selflearn.docgen import render

ROOT = Path(__file__).resolve().parents[1]


def test_log_format_doc_is_current() -> None:
    assert (ROOT / "docs" / "log-format.md").read_text() == render(), (
        "docs/log-format.md is stale: run python -m selflearn.docgen > docs/log-format.md"
    )


def test_readme_has_exactly_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme.count("make demo") >= 1 and readme.count("make test") >= 1
