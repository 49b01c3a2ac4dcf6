"""The README stays true to the code: metric table, commands, CI entry point."""

from __future__ import annotations

from scripts.readme_tables import README, with_tables
from tests.support import ROOT


def test_readme_tables_match_the_code() -> None:
    text = README.read_text()
    stale = "README tables are stale: run `.venv/bin/python -m scripts.readme_tables --write`"
    assert with_tables(text) == text, stale


def test_ci_runs_the_readme_test_command() -> None:
    readme = README.read_text()
    assert "make test" in readme
    assert "make up" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
