"""ClickHouse DB mode for Langfuse v4 (``events_core``) against embedded ClickHouse (chdb) with the full schema.

Spans are written into ``events_full`` as Langfuse v4 writes them (trace fields on every span, root spans with
``parent_span_id = ''``); the reference materialized view copies them into ``events_core``, which the reader
reads. An update is a newer row with the same sorting key and a later ``event_ts``, a delete a newer row with
``is_deleted = 1``. The reader must count each span once, in its latest version, and give the same series as
API mode against a v4 (``events_only``) server on the same data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inferwatch.services.langfuse_ingester.app import LangfuseIngester
from inferwatch.services.langfuse_ingester.config import LangfuseIngesterConfig, LangfuseProject
from inferwatch.services.langfuse_ingester.db import ClickHouseReader
from inferwatch.shared.settings import Secret
from inferwatch.simulators.langfuse import PROJECT_ID, Dataset, SimObservation, SimulatedLangfuse, make_dataset, serve
from tests.support.clickhouse import CLICKHOUSE_SCHEMA, chdb_query, clickhouse_time, insert, load_dataset, load_scores
from tests.support.langfuse import T0, Clock, MemoryStore, assert_equal_totals, kind_sums, make_ctx, sums

chdb_session = pytest.importorskip("chdb.session")

COMMON: dict[str, Any] = {
    "bucket_s": 30.0,
    "settle_s": 0.0,
    "recheck_s": 60.0,
    "backfill_s": 300.0,
    "max_new_buckets": 20,
}


def all_statements() -> list[str]:
    """The whole schema, v3 migrations and the v4 ones (0038-0046: ``events_full``, ``events_core``…)."""
    lines = [ln for ln in CLICKHOUSE_SCHEMA.read_text().splitlines() if not ln.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def open_session(path: Path) -> Any:
    """A chdb session with the full Langfuse schema applied (UTC)."""
    session = chdb_session.Session(str(path))
    session.query("SET session_timezone = 'UTC'")
    for statement in all_statements():
        session.query(statement)
    session.query("SYSTEM STOP MERGES events_core")  # keep every stored version: the reader must pick the latest
    return session


def event_row(data: Dataset, o: SimObservation, when: float, *, ended: bool = True) -> dict[str, Any]:
    """One ``events_full`` row: the span as visible at ``when``, with its trace's fields denormalised onto it."""
    trace = next(t for t in data.traces if t.id == o.trace_id)
    root = o.parent_id is None
    return {
        "project_id": PROJECT_ID,
        "trace_id": o.trace_id,
        "span_id": o.id,
        "parent_span_id": o.parent_id or "",
        "start_time": clickhouse_time(o.start),
        "end_time": clickhouse_time(o.end) if ended else None,
        "name": o.name,
        "type": o.type,
        "trace_name": trace.name,
        "user_id": trace.user_id or "",
        "session_id": trace.session_id or "",
        "tags": trace.tags,
        "level": o.level_at(when),
        "is_app_root": root,
        "provided_model_name": o.model or "",
        "usage_details": o.usage,
        "cost_details": o.cost_at(when),
        "metadata_names": list(trace.metadata) if root else [],
        "metadata_values": [str(v) for v in trace.metadata.values()] if root else [],
        "created_at": clickhouse_time(o.visible_at),
        "updated_at": clickhouse_time(when),
        "event_ts": clickhouse_time(when),
        "is_deleted": 0,
    }


def load_events(session: Any, data: Dataset) -> None:
    """Spans in versions: roots first without an end time, then ended; corrected generations twice; plus a whole
    trace and one generation of a live trace that were deleted afterwards (tombstones with ``is_deleted = 1``)."""
    roots = [o for o in data.observations if o.parent_id is None]
    insert(session, "events_full", [event_row(data, o, o.visible_at, ended=False) for o in roots])
    insert(session, "events_full", [event_row(data, o, o.visible_at + 1) for o in data.observations])
    corrected = [o for o in data.observations if o.late_cost is not None]
    assert corrected
    insert(session, "events_full", [event_row(data, o, o.updated_at) for o in corrected])
    first = data.traces[0]
    ghost_root = {**event_row(data, roots[0], roots[0].visible_at), "trace_id": "deleted-trace", "span_id": "gr"}
    gen = next(o for o in data.observations if o.type == "GENERATION")
    ghost_gen = {**event_row(data, gen, gen.visible_at), "span_id": "deleted-generation"}
    insert(session, "events_full", [ghost_root, ghost_gen])
    insert(
        session,
        "events_full",
        [
            {**row, "event_ts": clickhouse_time(first.visible_at + 60), "is_deleted": 1}
            for row in (ghost_root, ghost_gen)
        ],
    )
    load_scores(session, data)


async def api_snapshot(data: Dataset, major: int) -> Any:
    """API mode against the simulator of ``major`` with every correction applied."""
    sim = SimulatedLangfuse(data, major=major, clock=Clock(T0 + 3600))
    url, runner = await serve(sim)
    try:
        project = LangfuseProject(label="p", url=url, public_key=sim.public_key, secret_key=Secret(sim.secret_key))
        ingester = LangfuseIngester(
            LangfuseIngesterConfig(projects=(project,), **COMMON), make_ctx(), MemoryStore(), clock=Clock(T0)
        )
        snap = await ingester.cycle_project(ingester.projects[0])
        await ingester.aclose()
    finally:
        await runner.cleanup()
    assert snap.up, snap.error
    return snap


def db_ingester(session: Any) -> tuple[LangfuseIngester, ClickHouseReader]:
    """A DB-mode ingester whose ClickHouse reader queries the chdb session."""
    project = LangfuseProject(label="p", project_id=PROJECT_ID, dsn=Secret("clickhouse://chdb.invalid"))
    ingester = LangfuseIngester(
        LangfuseIngesterConfig(projects=(project,), mode="db", **COMMON), make_ctx(), MemoryStore(), clock=Clock(T0)
    )
    reader = ClickHouseReader(project, chdb_query(session))
    ingester.projects[0].reader = reader
    return ingester, reader


def by_series(snap: Any) -> dict[tuple[str, ...], float]:
    """Every usage counter by (model, user, segment, field)."""
    fields = (
        "traces_total",
        "observations_total",
        "error_observations_total",
        "input_tokens_total",
        "output_tokens_total",
        "total_tokens_total",
        "cost_usd_total",
    )
    return {(u.model, u.user, u.segment, f): getattr(u, f) for u in snap.usage for f in fields}


async def test_v4_events_mode_counts_latest_versions_only_and_equals_api_mode(tmp_path: Path) -> None:
    data = make_dataset(29, T0 - 240, T0 - 60, traces_per_s=0.3, update_after_s=5.0)
    session = open_session(tmp_path / "ch")
    try:
        load_events(session, data)
        raw = int(session.query("SELECT count() FROM events_core", "CSV").bytes().strip())
        live = int(session.query("SELECT count() FROM events_core FINAL WHERE is_deleted = 0", "CSV").bytes().strip())
        assert raw > live == len(data.observations)  # stored versions and tombstones the reader must see through
        ingester, reader = db_ingester(session)
        db = await ingester.cycle_project(ingester.projects[0])
        assert db.up, db.error
        assert reader.schema == "v4"
        assert db.endpoints == ["clickhouse:events_core", "clickhouse:scores"]
        assert db.server_version.startswith("4")
    finally:
        session.close()
    api = await api_snapshot(data, major=4)
    assert api.endpoints == ["/api/public/v2/observations", "/api/public/v3/scores"]
    assert api.watermark == db.watermark
    truth = SimulatedLangfuse(data, major=4).totals(0, api.watermark)
    assert truth["traces"] > 20
    assert truth["scores_counted"] > 10
    assert_equal_totals(sums(api), truth)
    assert_equal_totals(sums(db), truth)  # deleted spans and superseded versions are not counted
    assert by_series(db) == pytest.approx(by_series(api))
    assert db.latency == api.latency  # root latency from the ended version, not the open one
    assert db.scores == api.scores
    assert db.activity_by_hour == api.activity_by_hour
    assert (db.unique_users, db.unique_sessions) == (api.unique_users, api.unique_sessions)
    assert kind_sums(db) == kind_sums(api) == SimulatedLangfuse(data, major=4).kinds(0, api.watermark)
    assert db.session_lengths == api.session_lengths


async def test_schema_detection_follows_where_the_project_has_data(tmp_path: Path) -> None:
    """v4 in ``legacy`` write mode has an empty ``events_core``: read the v3 tables until events appear."""
    data = make_dataset(31, T0 - 240, T0 - 60, traces_per_s=0.2, update_after_s=5.0)
    session = open_session(tmp_path / "ch")
    try:
        load_dataset(session, data)  # the v3 tables only, as v3 (or v4 legacy mode) writes them
        ingester, reader = db_ingester(session)
        legacy = await ingester.cycle_project(ingester.projects[0])
        assert legacy.up, legacy.error
        assert reader.schema == "v3"
        assert legacy.endpoints[0] == "clickhouse:traces"
        assert sums(legacy)["traces"] == len(data.traces)
        other = {**event_row(data, data.observations[0], T0), "project_id": "another-project"}
        insert(session, "events_full", [other])
        await reader.prepare()
        assert reader.schema == "v3"  # another project's events do not count
        insert(session, "events_full", [event_row(data, data.observations[0], T0)])
        await reader.prepare()
        assert reader.schema == "v4"
        assert reader.endpoints() == ["clickhouse:events_core", "clickhouse:scores"]
    finally:
        session.close()


async def test_no_langfuse_tables_is_a_db_error(tmp_path: Path) -> None:
    session = chdb_session.Session(str(tmp_path / "ch"))
    try:
        ingester, _reader = db_ingester(session)
        snap = await ingester.cycle_project(ingester.projects[0])
    finally:
        session.close()
    assert not snap.up
    assert snap.error == "db_error"
