"""The READMEs stay true to the code: metric table, commands, CI entry point, each service's HTTP variables."""

from __future__ import annotations

import re

from inferwatch.services import SERVICES
from scripts.readme_tables import README, with_tables
from tests.support import ROOT

SERVICE_READMES = {spec.name: ROOT / "services" / spec.app.split(".")[-2] / "README.md" for spec in SERVICES}
WITHOUT_README = {"aggregator"}  # documented in the top-level README and deploy/README.md
HTTP_VARIABLE = re.compile(r"\bINFERWATCH_[A-Z_]*(?:_PORT|_HTTP_HOST)\b")


def test_readme_tables_match_the_code() -> None:
    text = README.read_text()
    stale = "README tables are stale: run `.venv/bin/python -m scripts.readme_tables --write`"
    assert with_tables(text) == text, stale


def test_ci_runs_the_readme_test_command() -> None:
    readme = README.read_text()
    assert "make test" in readme
    assert "make up" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_each_service_readme_documents_its_registry_http_variables() -> None:
    assert {name for name, path in SERVICE_READMES.items() if not path.is_file()} == WITHOUT_README
    for spec in SERVICES:
        path = SERVICE_READMES[spec.name]
        if spec.name in WITHOUT_README:
            continue
        text = path.read_text()
        where = path.relative_to(ROOT)
        assert f"| `{spec.port_variable}` | `{spec.port}` |" in text, f"{where}: needs a row for {spec.port_variable}"
        assert f"| `{spec.env_prefix}HTTP_HOST` |" in text, f"{where}: needs a row for {spec.env_prefix}HTTP_HOST"
        others = set(HTTP_VARIABLE.findall(text)) - {spec.port_variable, spec.env_prefix + "HTTP_HOST"}
        assert not others, f"{where}: {sorted(others)} are not {spec.name}'s (inferwatch.services.SERVICES)"


def test_docs_name_only_http_variables_that_exist() -> None:
    known = {spec.port_variable for spec in SERVICES} | {spec.env_prefix + "HTTP_HOST" for spec in SERVICES}
    known.add("INFERWATCH_SIM_CONTROL_PORT")  # the simulators' control API, not a service
    for path in (README, ROOT / "deploy" / "README.md"):
        unknown = set(HTTP_VARIABLE.findall(path.read_text())) - known
        assert not unknown, f"{path.relative_to(ROOT)}: no service reads {sorted(unknown)}"
