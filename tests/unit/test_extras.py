"""Optional parts are extras: a missing one is an error that names it, and every extra named is declared."""

from __future__ import annotations

import sys
import tomllib

import pytest

from inferwatch.services.langfuse_ingester.config import LangfuseIngesterConfig, db_driver
from inferwatch.services.vllm_scraper.config import VllmScraperConfig
from inferwatch.shared import extras
from inferwatch.shared.settings import Env, SettingsError
from tests.support import ROOT


def test_every_extra_named_in_code_is_declared_in_pyproject() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    named = {extra for extra, _ in extras.EXTRA_OF_MODULE.values()}
    assert named <= set(declared)
    # the test extra brings every runtime extra, so `make test` exercises them all
    brought = {e for d in declared["test"] if d.startswith("inferwatch[") for e in d[11:-1].split(",")}
    assert named <= brought


def test_a_missing_module_is_an_error_naming_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "grpc", None)  # an import of grpc now fails as if it were not installed
    with pytest.raises(extras.MissingExtraError, match=r"pip install 'inferwatch\[grpc\]'"):
        extras.require("grpc")
    assert extras.require("json") is sys.modules["json"]


def test_missing_finds_absent_modules_without_importing_them() -> None:
    assert extras.missing("json") is None
    assert extras.EXTRA_OF_MODULE["psycopg"][0] == "langfuse-db"
    original = dict(extras.EXTRA_OF_MODULE)
    try:
        extras.EXTRA_OF_MODULE["no_such_module_xyz"] = ("demo-extra", "a part")
        assert extras.missing("json", "no_such_module_xyz") == (
            "a part needs the 'demo-extra' extra (module no_such_module_xyz is not installed): "
            "pip install 'inferwatch[demo-extra]'"
        )
    finally:
        extras.EXTRA_OF_MODULE.clear()
        extras.EXTRA_OF_MODULE.update(original)


def test_settings_that_need_a_missing_extra_stop_the_service_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extras.importlib.util, "find_spec", lambda name: None)  # nothing optional installed
    with pytest.raises(SettingsError, match=r"INFERWATCH_VLLM_TARGETS: .*'grpc' extra"):
        VllmScraperConfig.from_env(Env({"INFERWATCH_VLLM_TARGETS": "http://a:8000,grpc://b:50051"}))
    VllmScraperConfig.from_env(Env({"INFERWATCH_VLLM_TARGETS": "http://a:8000"}))  # HTTP targets need nothing
    with pytest.raises(SettingsError, match=r"MODE=db, project default: .*'langfuse-db' extra") as raised:
        LangfuseIngesterConfig.from_env(
            Env({"INFERWATCH_LANGFUSE_MODE": "db", "INFERWATCH_LANGFUSE_DSN": "postgresql://u:pw-marker@db/langfuse"})
        )
    assert "pw-marker" not in str(raised.value)


def test_db_driver_by_dsn_scheme() -> None:
    assert db_driver("postgresql://u@h/db") == "psycopg"
    assert db_driver("host=h dbname=langfuse") == "psycopg"
    assert db_driver("clickhouse://h:9000") == "clickhouse_connect"
    assert db_driver("ftp://h") is None
