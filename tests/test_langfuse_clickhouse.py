"""ClickHouse DB mode (Langfuse v3) against embedded ClickHouse (chdb) with the reference schema applied.

Rows are written as Langfuse's worker writes them: an update is a full new row with a later ``event_ts``, a
delete a row with ``is_deleted = 1``. The reader must count each row once, in its latest version, and agree with
API mode on the same data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inferwatch.services.langfuse_ingester.app import LangfuseIngester
from inferwatch.services.langfuse_ingester.config import LangfuseIngesterConfig, LangfuseProject
from inferwatch.services.langfuse_ingester.db import ClickHouseReader, QueryFn
from inferwatch.shared.settings import Secret
from inferwatch.simulators.langfuse import PROJECT_ID, Dataset, SimulatedLangfuse, make_dataset, serve
from tests.test_langfuse_ingester import T0, Clock, MemoryStore, assert_equal_totals, make_ctx, sums

chdb_session = pytest.importorskip("chdb.session")

SCHEMA = Path(__file__).parent / "fixtures" / "langfuse" / "clickhouse-schema.sql"


def v3_statements() -> list[str]:
    """The v3 part of the schema (migrations 0001-0037), one statement each."""
    text = SCHEMA.read_text().split("-- ==== 0038")[0]
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _dt(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.") + f"{round(ts * 1000) % 1000:03d}"


def insert(session: Any, table: str, rows: list[dict[str, Any]]) -> None:
    if rows:
        body = "\n".join(json.dumps(r) for r in rows)
        session.query(f"INSERT INTO {table} FORMAT JSONEachRow\n{body}")


def load_dataset(session: Any, data: Dataset) -> None:
    """Original rows, then corrections as newer versions, plus rows that were deleted afterwards."""
    traces = [
        {
            "id": t.id,
            "timestamp": _dt(t.timestamp),
            "name": t.name,
            "user_id": t.user_id,
            "metadata": {k: str(v) for k, v in t.metadata.items()},
            "project_id": PROJECT_ID,
            "tags": t.tags,
            "session_id": t.session_id,
            "created_at": _dt(t.visible_at),
            "updated_at": _dt(t.visible_at),
            "event_ts": _dt(t.visible_at),
            "is_deleted": 0,
        }
        for t in data.traces
    ]
    ghost = {**traces[0], "id": "deleted-trace", "event_ts": _dt(data.traces[0].visible_at)}
    insert(session, "traces", [*traces, ghost])
    insert(session, "traces", [{**ghost, "event_ts": _dt(data.traces[0].visible_at + 60), "is_deleted": 1}])

    def obs_row(o: Any, when: float) -> dict[str, Any]:
        cost = o.cost_at(when)
        return {
            "id": o.id,
            "trace_id": o.trace_id,
            "project_id": PROJECT_ID,
            "type": o.type,
            "parent_observation_id": o.parent_id,
            "start_time": _dt(o.start),
            "end_time": _dt(o.end),
            "name": o.name,
            "level": o.level_at(when),
            "provided_model_name": o.model,
            "usage_details": o.usage,
            "cost_details": cost,
            "total_cost": cost.get("total", 0.0),
            "created_at": _dt(o.visible_at),
            "updated_at": _dt(when),
            "event_ts": _dt(when),
            "is_deleted": 0,
        }

    insert(session, "observations", [obs_row(o, o.visible_at) for o in data.observations])
    corrected = [o for o in data.observations if o.late_cost is not None]
    assert corrected
    insert(session, "observations", [obs_row(o, o.updated_at) for o in corrected])
    load_scores(session, data)


def load_scores(session: Any, data: Dataset) -> None:
    """The scores v3+ stores (no null numerics; TEXT rows too): the ``scores`` table, the same in v3 and v4."""
    scores = [
        {
            "id": s.id,
            "timestamp": _dt(s.timestamp),
            "project_id": PROJECT_ID,
            "trace_id": s.trace_id,
            "name": s.name,
            "value": s.value if s.value is not None else 0.0,
            "source": "API",
            "data_type": s.data_type,
            "string_value": s.string_value,
            "created_at": _dt(s.visible_at),
            "updated_at": _dt(s.visible_at),
            "event_ts": _dt(s.visible_at),
            "is_deleted": 0,
        }
        for s in data.scores
        if s.value is not None or s.data_type in ("TEXT", "CATEGORICAL")
    ]
    insert(session, "scores", scores)


def chdb_query(session: Any) -> QueryFn:
    """The reader's query function over a chdb session (server-side parameters, JSON rows)."""

    async def query(sql: str, params: dict[str, Any]) -> list[list[Any]]:
        result = session.query(sql, "JSONCompact", params={k: str(v) for k, v in params.items()})
        rows: list[list[Any]] = json.loads(result.bytes())["data"]
        return rows

    return query


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
    assert db.unique_users == api.unique_users
