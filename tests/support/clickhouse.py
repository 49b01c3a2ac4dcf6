"""Langfuse's ClickHouse tables on embedded ClickHouse (chdb): the reference schema, and rows written the way
Langfuse's worker writes them (an update is a newer row, a delete a row with ``is_deleted = 1``)."""

from __future__ import annotations

import json
from typing import Any

from inferwatch.services.langfuse_ingester.db import QueryFn
from inferwatch.simulators.langfuse import PROJECT_ID, Dataset
from tests.support import FIXTURES

CLICKHOUSE_SCHEMA = FIXTURES / "langfuse" / "clickhouse-schema.sql"


def clickhouse_time(ts: float) -> str:
    """``ts`` (epoch seconds) as a ClickHouse DateTime64(3) literal in UTC."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.") + f"{round(ts * 1000) % 1000:03d}"


def insert(session: Any, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``table`` of a chdb session (JSONEachRow)."""
    if rows:
        body = "\n".join(json.dumps(r) for r in rows)
        session.query(f"INSERT INTO {table} FORMAT JSONEachRow\n{body}")


def load_dataset(session: Any, data: Dataset) -> None:
    """Original rows, then corrections as newer versions, plus rows that were deleted afterwards."""
    traces = [
        {
            "id": t.id,
            "timestamp": clickhouse_time(t.timestamp),
            "name": t.name,
            "user_id": t.user_id,
            "metadata": {k: str(v) for k, v in t.metadata.items()},
            "project_id": PROJECT_ID,
            "tags": t.tags,
            "session_id": t.session_id,
            "created_at": clickhouse_time(t.visible_at),
            "updated_at": clickhouse_time(t.visible_at),
            "event_ts": clickhouse_time(t.visible_at),
            "is_deleted": 0,
        }
        for t in data.traces
    ]
    ghost = {**traces[0], "id": "deleted-trace", "event_ts": clickhouse_time(data.traces[0].visible_at)}
    insert(session, "traces", [*traces, ghost])
    insert(session, "traces", [{**ghost, "event_ts": clickhouse_time(data.traces[0].visible_at + 60), "is_deleted": 1}])

    def obs_row(o: Any, when: float) -> dict[str, Any]:
        cost = o.cost_at(when)
        return {
            "id": o.id,
            "trace_id": o.trace_id,
            "project_id": PROJECT_ID,
            "type": o.type,
            "parent_observation_id": o.parent_id,
            "start_time": clickhouse_time(o.start),
            "end_time": clickhouse_time(o.end),
            "name": o.name,
            "level": o.level_at(when),
            "provided_model_name": o.model,
            "usage_details": o.usage,
            "cost_details": cost,
            "total_cost": cost.get("total", 0.0),
            "created_at": clickhouse_time(o.visible_at),
            "updated_at": clickhouse_time(when),
            "event_ts": clickhouse_time(when),
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
            "timestamp": clickhouse_time(s.timestamp),
            "project_id": PROJECT_ID,
            "trace_id": s.trace_id,
            "name": s.name,
            "value": s.value if s.value is not None else 0.0,
            "source": "API",
            "data_type": s.data_type,
            "string_value": s.string_value,
            "created_at": clickhouse_time(s.visible_at),
            "updated_at": clickhouse_time(s.visible_at),
            "event_ts": clickhouse_time(s.visible_at),
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
