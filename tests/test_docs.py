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


def test_benchmarks_page_is_generated_from_the_results() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "bench/results_page.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # concise: a page a person reads (24 benchmarks; per-voice, per-answer and older figures live in
    # the results files and benchmarks-history.md)
    assert len((ROOT / "docs" / "benchmarks.md").read_bytes()) < 44_000


def test_docs_link_to_files_that_exist() -> None:
    import re

    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
