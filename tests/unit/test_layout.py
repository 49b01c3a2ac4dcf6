"""The project's shape: one import root, one registry of services, and the couplings the design allows."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from inferwatch.services import SERVICES
from tests.support import ROOT

PRODUCTION = ("contracts", "shared", "services")


def _imports(path: Path) -> set[str]:
    """Every module name ``path`` imports (absolute imports only: the project uses no relative ones)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def test_every_import_goes_through_the_one_root() -> None:
    for path in _python_files(*PRODUCTION, "simulators", "inferwatch", "tests", "bench", "scripts", "deploy"):
        for name in _imports(path):
            top = name.split(".")[0]
            assert top not in {"contracts", "shared", "services", "simulators"}, f"{path}: imports {name}"


def test_production_code_never_imports_the_simulators() -> None:
    for path in _python_files(*PRODUCTION):
        bad = {n for n in _imports(path) if n.startswith("inferwatch.simulators")}
        assert not bad, f"{path} imports {bad}"


def test_contracts_import_nothing_of_ours_but_contracts() -> None:
    for path in _python_files("contracts"):
        bad = {n for n in _imports(path) if n.startswith("inferwatch.") and not n.startswith("inferwatch.contracts")}
        assert not bad, f"{path} imports {bad}"


def test_no_service_imports_another_service() -> None:
    for spec in SERVICES:
        folder = ROOT / "services" / spec.app.split(".")[2]
        own = "inferwatch.services." + folder.name
        for path in sorted(folder.rglob("*.py")):
            others = {n for n in _imports(path) if n.startswith("inferwatch.services.") and not n.startswith(own)}
            assert not others, f"{path} imports {others}"


def test_the_registry_declares_every_service_folder_once() -> None:
    folders = {p.parent.name for p in (ROOT / "services").glob("*/config.py")}
    assert {spec.app.split(".")[2] for spec in SERVICES} == folders
    assert len({s.name for s in SERVICES}) == len({s.port for s in SERVICES}) == len(SERVICES)
    assert len({s.env_prefix for s in SERVICES}) == len(SERVICES)
    for spec in SERVICES:
        assert spec.env_prefix.startswith("INFERWATCH_")
        assert spec.env_prefix.endswith("_")
        module = importlib.import_module(spec.app)
        assert callable(getattr(module, "build", None) or getattr(module, "run", None)), spec.app
