"""ClickHouse DB mode (Langfuse v3) against embedded ClickHouse (chdb) with the reference schema applied.

Rows are written as Langfuse's worker writes them: an update is a full new row with a later ``event_ts``, a
delete a row with ``is_deleted = 1``. The reader must count each row once, in its latest version, and agree with
API mode on the same data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inferwatch.services.langfuse_ingester.app import LangfuseIngester
from inferwatch.services.langfuse_ingester.config import LangfuseIngesterConfig, LangfuseProject
from inferwatch.services.langfuse_ingester.db import ClickHouseReader
from inferwatch.shared.settings import Secret
from inferwatch.simulators.langfuse import PROJECT_ID, SimulatedLangfuse, make_dataset, serve
from tests.support.clickhouse import CLICKHOUSE_SCHEMA, chdb_query, load_dataset
from tests.support.langfuse import T0, Clock, MemoryStore, assert_equal_totals, kind_sums, make_ctx, sums

chdb_session = pytest.importorskip("chdb.session")


def v3_statements() -> list[str]:
    """The v3 part of the schema (migrations 0001-0037), one statement each."""
    text = CLICKHOUSE_SCHEMA.read_text().split("-- ==== 0038")[0]
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


async def test_clickhouse_mode_honours_final_and_is_deleted_and_equals_api_mode(tmp_path: Path) -> None:
    session = chdb_session.Session(str(tmp_path / "ch"))
    try:
        session.query("SET session_timezone = 'UTC'")
        for statement in v3_statements():
            session.query(statement)
        data = make_dataset(23, T0 - 240, T0 - 60, traces_per_s=0.3, update_after_s=5.0)
        load_dataset(session, data)
        raw = session.query("SELECT count() FROM observations", "CSV").bytes().strip()
        assert int(raw) > len(data.observations)  # several versions stored; FINAL must pick one

        db_project = LangfuseProject(label="p", project_id=PROJECT_ID, dsn=Secret("clickhouse://chdb.invalid"))
        common: dict[str, Any] = {
            "bucket_s": 30.0,
            "settle_s": 0.0,
            "recheck_s": 60.0,
            "backfill_s": 300.0,
            "max_new_buckets": 20,
        }
        config = LangfuseIngesterConfig(projects=(db_project,), mode="db", **common)
        ingester = LangfuseIngester(config, make_ctx(), MemoryStore(), clock=Clock(T0))
        ingester.projects[0].reader = ClickHouseReader(db_project, chdb_query(session))
        db = await ingester.cycle_project(ingester.projects[0])
        assert db.up, db.error
        assert db.endpoints[0] == "clickhouse:traces"
    finally:
        session.close()
    sim = SimulatedLangfuse(data, major=3, clock=Clock(T0 + 3600))  # every correction applied
    url, runner = await serve(sim)
    try:
        api_project = LangfuseProject(label="p", url=url, public_key=sim.public_key, secret_key=Secret(sim.secret_key))
        ingester = LangfuseIngester(
            LangfuseIngesterConfig(projects=(api_project,), **common), make_ctx(), MemoryStore(), clock=Clock(T0)
        )
        api = await ingester.cycle_project(ingester.projects[0])
        await ingester.aclose()
    finally:
        await runner.cleanup()
    assert api.up
    assert api.watermark == db.watermark
    truth = sim.totals(0, api.watermark)
    assert truth["traces"] > 20
    assert_equal_totals(sums(api), truth)
    assert_equal_totals(sums(db), truth)  # the deleted trace and the old versions are not counted
    assert {(u.model, u.user, u.segment): u.cost_usd_total for u in db.usage} == pytest.approx(
        {(u.model, u.user, u.segment): u.cost_usd_total for u in api.usage}
    )
    assert db.activity_by_hour == api.activity_by_hour
    assert kind_sums(db) == kind_sums(api) == sim.kinds(0, api.watermark)
    assert {"TOOL", "AGENT"} <= set(kind_sums(db)["type"])
    assert db.session_lengths == api.session_lengths
    assert db.unique_users == api.unique_users
