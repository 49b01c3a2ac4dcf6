"""DB mode: read Langfuse's own database directly, producing the same rows as the API reader.

Langfuse v2 keeps everything in PostgreSQL (``traces``, ``observations_view`` for cost and latency in
seconds, ``scores``). The rows go through the same bucket accounting as API mode, so both modes export the
same series for the same data. Langfuse v3 keeps traces, observations and scores in ClickHouse
(``ReplacingMergeTree(event_ts, is_deleted)``): reads use ``FINAL`` and ``is_deleted = 0`` so each row
counts once, in its latest version. Langfuse v4 keeps observations in ``events_full`` and its projection
``events_core`` (same engine, sorting key ``(project_id, toStartOfMinute(start_time), xxHash32(trace_id),
span_id, start_time)``) with the trace fields denormalised onto every span and no traces table: traces are the
root spans (``parent_span_id = ''``), as in API mode's ``/v2/observations``. Scores stay in ``scores``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from inferwatch.services.langfuse_ingester.config import LangfuseProject, db_driver
from inferwatch.services.langfuse_ingester.core import (
    KNOWN_SCORE_TYPES,
    BucketRows,
    ObservationRow,
    ScoreRow,
    TraceRow,
    number,
    reduce_details,
)

LOOKBACK_S = 3600.0

TRACES_SQL = """
SELECT t.id, t.timestamp, t.name, t.user_id, t.session_id, t.tags, t.metadata,
       (SELECT EXTRACT(EPOCH FROM (max(o.end_time) - min(o.start_time)))::double precision
          FROM observations o WHERE o.trace_id = t.id AND o.project_id = t.project_id) AS latency
  FROM traces t
 WHERE t.project_id = %s AND t.timestamp >= %s AND t.timestamp < %s
"""

OBSERVATIONS_SQL = """
SELECT id, trace_id, start_time, type::text, model, level::text, prompt_tokens, completion_tokens, total_tokens,
       calculated_total_cost::double precision, latency, parent_observation_id, name
  FROM observations_view
 WHERE project_id = %s AND start_time >= %s AND start_time < %s
"""

SCORES_SQL = """
SELECT id, timestamp, name, data_type::text, value, string_value
  FROM scores
 WHERE project_id = %s AND timestamp >= %s AND timestamp < %s
"""


def _ts(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def trace_from_db(row: tuple[Any, ...]) -> TraceRow:
    """A ``traces`` row (plus computed latency in seconds; 0 without observations, as the API says)."""
    tid, ts, name, user_id, session_id, tags, metadata, latency = row
    return TraceRow(
        id=tid,
        timestamp=_ts(ts),
        name=name or "",
        user_id=user_id or "",
        session_id=session_id or "",
        tags=tuple(tags or ()),
        metadata=metadata if isinstance(metadata, dict) else {},
        latency_s=float(latency) if latency is not None else 0.0,
    )


def observation_from_db(row: tuple[Any, ...]) -> ObservationRow:
    """An ``observations_view`` row (v2 has token columns, not ``usage_details``)."""
    oid, trace_id, start, otype, model, level, prompt, completion, total, cost, latency, parent, name = row
    inp, out = float(prompt or 0), float(completion or 0)
    return ObservationRow(
        id=oid,
        trace_id=trace_id or "",
        start_time=_ts(start),
        type=otype or "",
        model=model or "",
        level=level or "DEFAULT",
        input_tokens=inp,
        output_tokens=out,
        total_tokens=float(total) if total is not None else inp + out,
        cost_usd=float(cost or 0.0),
        latency_s=float(latency) if latency is not None and latency >= 0 else None,
        is_root=parent is None,
        name=name or "",
    )


def score_from_db(row: tuple[Any, ...]) -> ScoreRow | None:
    """A ``scores`` row; None for data types the analytics do not know."""
    sid, ts, name, data_type, value, string_value = row
    if data_type not in KNOWN_SCORE_TYPES:
        return None
    if data_type == "CATEGORICAL":
        return ScoreRow(id=sid, timestamp=_ts(ts), name=name, data_type=data_type, value=None, category=string_value)
    numeric = float(value) if value is not None else None
    if data_type == "BOOLEAN" and numeric is not None:
        numeric = 1.0 if numeric else 0.0
    return ScoreRow(id=sid, timestamp=_ts(ts), name=name, data_type=data_type, value=numeric, category=None)


class PostgresReader:
    """Langfuse v2 PostgreSQL (read-only use; one connection, reopened after errors)."""

    def __init__(self, project: LangfuseProject) -> None:
        if project.dsn is None:
            raise ValueError(f"project {project.label}: DB mode needs INFERWATCH_LANGFUSE_DSN")
        if not project.project_id:
            raise ValueError(f"project {project.label}: DB mode needs INFERWATCH_LANGFUSE_PROJECT_ID")
        self.project = project
        self.server_version = "2 (postgres)"
        self.retention_days = 0  # v2 has no retention feature
        self._conn: Any = None

    def endpoints(self) -> list[str]:
        """Tables read."""
        return ["postgres:traces", "postgres:observations_view", "postgres:scores"]

    async def prepare(self) -> None:
        """Connect (autocommit, read-only)."""
        import psycopg

        if self._conn is None or self._conn.closed:
            assert self.project.dsn is not None
            try:
                self._conn = await psycopg.AsyncConnection.connect(
                    self.project.dsn.reveal(), autocommit=True, connect_timeout=10
                )
                await self._conn.set_read_only(True)
                await self._conn.execute("SET TIME ZONE 'UTC'")  # timestamp columns hold UTC without a zone
            except psycopg.Error as exc:  # the message may hold the DSN's host/user: keep only the class
                await self.aclose()
                raise OSError(f"postgres: {type(exc).__name__}") from None

    async def read(self, start: float, end: float) -> BucketRows:
        """Rows of ``[start, end)`` (traces from an hour earlier too, to attribute observations)."""
        import psycopg

        rows = BucketRows()
        pid = self.project.project_id
        try:
            async with self._conn.cursor() as cur:
                await cur.execute(TRACES_SQL, (pid, _dt(start - LOOKBACK_S), _dt(end)))
                for record in await cur.fetchall():
                    trace = trace_from_db(record)
                    if trace.timestamp >= start:
                        rows.traces.append(trace)
                    else:
                        rows.context_traces[trace.id] = trace
                await cur.execute(OBSERVATIONS_SQL, (pid, _dt(start), _dt(end)))
                rows.observations = [observation_from_db(r) for r in await cur.fetchall()]
                await cur.execute(SCORES_SQL, (pid, _dt(start), _dt(end)))
                for record in await cur.fetchall():
                    score = score_from_db(record)
                    if score is None:
                        rows.bad_rows["score_unknown_type"] = rows.bad_rows.get("score_unknown_type", 0.0) + 1
                    else:
                        rows.scores.append(score)
        except psycopg.Error as exc:
            await self.aclose()
            raise OSError(f"postgres: {type(exc).__name__}") from None
        return rows

    async def aclose(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


QueryFn = Callable[[str, dict[str, Any]], Awaitable[list[list[Any]]]]
"""Runs one ClickHouse query with server-side ``{name:Type}`` parameters and returns its rows."""

CH_WINDOW = "project_id = {pid:String} AND COL >= toDateTime64({lo:Float64}, 3) AND COL < toDateTime64({hi:Float64}, 3)"

CH_TRACES_SQL = f"""
SELECT t.id, toUnixTimestamp64Milli(t.timestamp) / 1000.0, t.name, t.user_id, t.session_id, t.tags, t.metadata,
       lat.latency
  FROM traces AS t FINAL
  LEFT JOIN (
        SELECT trace_id, (toUnixTimestamp64Milli(max(end_time)) - toUnixTimestamp64Milli(min(start_time))) / 1000.0
               AS latency
          FROM observations FINAL
         WHERE project_id = {{pid:String}} AND is_deleted = 0
           AND start_time >= toDateTime64({{lo:Float64}} - 86400, 3)
           AND start_time < toDateTime64({{hi:Float64}} + 86400, 3)
         GROUP BY trace_id) AS lat ON lat.trace_id = t.id
 WHERE {CH_WINDOW.replace("COL", "t.timestamp").replace("project_id", "t.project_id")} AND t.is_deleted = 0
"""

CH_OBSERVATIONS_SQL = f"""
SELECT id, trace_id, toUnixTimestamp64Milli(start_time) / 1000.0, type, provided_model_name, level,
       mapApply((k, v) -> (k, toFloat64(v)), usage_details), mapApply((k, v) -> (k, toFloat64(v)), cost_details),
       toFloat64(total_cost),
       if(end_time IS NULL, NULL, (toUnixTimestamp64Milli(end_time) - toUnixTimestamp64Milli(start_time)) / 1000.0),
       parent_observation_id, name
  FROM observations FINAL
 WHERE {CH_WINDOW.replace("COL", "start_time")} AND is_deleted = 0
"""

CH_SCORES_SQL = f"""
SELECT id, toUnixTimestamp64Milli(timestamp) / 1000.0, name, data_type, value, string_value
  FROM scores FINAL
 WHERE {CH_WINDOW.replace("COL", "timestamp")} AND is_deleted = 0
"""


CH_EVENTS_SQL = """
SELECT span_id, trace_id, toUnixTimestamp64Micro(start_time) / 1e6, type, provided_model_name, level,
       mapApply((k, v) -> (k, toFloat64(v)), usage_details), mapApply((k, v) -> (k, toFloat64(v)), cost_details),
       if(end_time IS NULL, NULL, (toUnixTimestamp64Micro(end_time) - toUnixTimestamp64Micro(start_time)) / 1e6),
       parent_span_id, name, user_id, session_id, trace_name, tags
  FROM events_core FINAL
 WHERE project_id = {pid:String} AND start_time >= toDateTime64({lo:Float64}, 6)
   AND start_time < toDateTime64({hi:Float64}, 6) AND is_deleted = 0
"""
# FINAL although Langfuse's own event reads mostly skip it: a span updated after its first write (legacy SDKs
# through the propagation job, cost or end-time updates) is a newer row with the same sorting key and a later
# event_ts, and until a merge runs both versions are stored. Every sorting-key column is immutable, so FINAL
# keeps exactly the latest version of each span; WHERE is_deleted = 0 then drops spans deleted in that version.

CH_TABLES_SQL = """
SELECT name FROM system.tables WHERE database = currentDatabase() AND name IN ('traces', 'events_core')
"""

CH_HAS_EVENTS_SQL = "SELECT count() FROM (SELECT 1 FROM events_core WHERE project_id = {pid:String} LIMIT 1)"


def ch_trace(row: list[Any]) -> TraceRow:
    """A ``traces FINAL`` row with its latency (0 without observations, as the API says)."""
    tid, ts, name, user_id, session_id, tags, metadata, latency = row
    lat = number(latency)
    return TraceRow(
        id=tid,
        timestamp=float(ts),
        name=name or "",
        user_id=user_id or "",
        session_id=session_id or "",
        tags=tuple(tags or ()),
        metadata=dict(metadata or {}),
        latency_s=lat if lat is not None else 0.0,
    )


def ch_observation(row: list[Any]) -> ObservationRow:
    """An ``observations FINAL`` row: tokens from ``usage_details`` reduced like the API, cost ``total_cost``."""
    oid, trace_id, start, otype, model, level, usage, cost_details, total_cost, latency, parent, name = row
    inp, out, total = reduce_details(usage or {})
    cost = number(total_cost)
    if cost is None:
        c_in, c_out, c_total = reduce_details(cost_details or {})
        cost = c_total if c_total is not None else c_in + c_out
    lat = number(latency)
    return ObservationRow(
        id=oid,
        trace_id=trace_id or "",
        start_time=float(start),
        type=otype or "",
        model=model or "",
        level=level or "DEFAULT",
        input_tokens=inp,
        output_tokens=out,
        total_tokens=total if total is not None else inp + out,
        cost_usd=cost,
        latency_s=lat if lat is not None and lat >= 0 else None,
        is_root=not parent,
        name=name or "",
    )


def ch_event(row: list[Any]) -> ObservationRow:
    """An ``events_core FINAL`` row: a span with its trace's fields; the root (no parent span) stands for the trace.

    Tokens are reduced like the API; cost is ``cost_details['total']`` (what the ``total_cost`` alias reads),
    else input + output.
    """
    # An events_core row is an observations row without total_cost (so the cost comes from cost_details),
    # followed by the trace's fields.
    span = ch_observation([*row[:8], None, *row[8:11]])
    user_id, session_id, trace_name, tags = row[11:]
    return replace(
        span,
        user_id=user_id or "",
        session_id=session_id or "",
        trace_name=trace_name or "",
        tags=tuple(tags or ()),
    )


def ch_score(row: list[Any]) -> ScoreRow | None:
    """A ``scores FINAL`` row; None for data types the analytics do not know."""
    sid, ts, name, data_type, value, string_value = row
    if data_type not in KNOWN_SCORE_TYPES:
        return None
    if data_type == "CATEGORICAL":
        return ScoreRow(id=sid, timestamp=float(ts), name=name, data_type=data_type, value=None, category=string_value)
    numeric = number(value)
    if data_type == "BOOLEAN" and numeric is not None:
        numeric = 1.0 if numeric else 0.0
    return ScoreRow(id=sid, timestamp=float(ts), name=name, data_type=data_type, value=numeric, category=None)


class ClickHouseReader:
    """Langfuse v3 or v4 ClickHouse through a query function (clickhouse-connect in production, chdb in tests).

    The schema is detected at :meth:`prepare`: the v4 events reader once ``events_core`` holds rows of the
    project (v4 ``events_only`` or ``dual`` write mode), else the v3 tables (v3, or v4 in ``legacy`` write mode,
    whose migrations create ``events_core`` but which writes no events). Until v4 is found the check is repeated
    every cycle, so a switch to ``events_only`` is followed; once v4, it stays v4.
    """

    def __init__(self, project: LangfuseProject, query: QueryFn | None = None) -> None:
        if not project.project_id:
            raise ValueError(f"project {project.label}: DB mode needs INFERWATCH_LANGFUSE_PROJECT_ID")
        self.project = project
        self.schema = ""  # "v3" or "v4" once detected
        self.server_version = "3 (clickhouse)"
        self.retention_days = 0
        self._query = query
        self._client: Any = None

    def endpoints(self) -> list[str]:
        """Tables read."""
        if self.schema == "v4":
            return ["clickhouse:events_core", "clickhouse:scores"]
        return ["clickhouse:traces", "clickhouse:observations", "clickhouse:scores"]

    async def prepare(self) -> None:
        """Open a clickhouse-connect client from the DSN (unless a query function was given); detect the schema."""
        if self._query is None:
            import clickhouse_connect

            assert self.project.dsn is not None
            try:
                self._client = await clickhouse_connect.get_async_client(dsn=self.project.dsn.reveal())
            except Exception as exc:  # the driver's errors may quote the DSN: keep only the class
                raise OSError(f"clickhouse: {type(exc).__name__}") from None
            client = self._client

            async def run(sql: str, params: dict[str, Any]) -> list[list[Any]]:
                result = await client.query(sql, parameters=params)
                return [list(r) for r in result.result_rows]

            self._query = run
        if self.schema != "v4":
            try:
                self.schema = await self._detect()
            except OSError:
                raise
            except Exception as exc:
                raise OSError(f"clickhouse: {type(exc).__name__}") from None
            self.server_version = "4 (clickhouse events)" if self.schema == "v4" else "3 (clickhouse)"

    async def _detect(self) -> str:
        assert self._query is not None
        tables = {str(r[0]) for r in await self._query(CH_TABLES_SQL, {})}
        if "events_core" in tables:
            has_events = await self._query(CH_HAS_EVENTS_SQL, {"pid": self.project.project_id})
            if int(has_events[0][0]) > 0 or "traces" not in tables:
                return "v4"
        if "traces" in tables:
            return "v3"
        raise OSError("clickhouse: no Langfuse tables (traces or events_core) in the DSN's database")

    async def read(self, start: float, end: float) -> BucketRows:
        """Rows of ``[start, end)`` in their latest version, deleted rows excluded."""
        assert self._query is not None
        rows = BucketRows(traces_from_roots=self.schema == "v4")
        pid = self.project.project_id
        window = {"pid": pid, "lo": start, "hi": end}
        try:
            if self.schema == "v4":
                rows.observations = [ch_event(r) for r in await self._query(CH_EVENTS_SQL, window)]
            else:
                for record in await self._query(CH_TRACES_SQL, {"pid": pid, "lo": start - LOOKBACK_S, "hi": end}):
                    trace = ch_trace(record)
                    if trace.timestamp >= start:
                        rows.traces.append(trace)
                    else:
                        rows.context_traces[trace.id] = trace
                rows.observations = [ch_observation(r) for r in await self._query(CH_OBSERVATIONS_SQL, window)]
            for record in await self._query(CH_SCORES_SQL, window):
                score = ch_score(record)
                if score is None:
                    rows.bad_rows["score_unknown_type"] = rows.bad_rows.get("score_unknown_type", 0.0) + 1
                else:
                    rows.scores.append(score)
        except OSError:
            raise
        except Exception as exc:  # driver errors of any kind: counted by the caller, the loop carries on
            raise OSError(f"clickhouse: {type(exc).__name__}") from None
        return rows

    async def aclose(self) -> None:
        """Close the client."""
        if self._client is not None:
            await self._client.close()
            self._client = None
            self._query = None


def db_reader(project: LangfuseProject) -> PostgresReader | ClickHouseReader:
    """The DB reader for a project's DSN scheme."""
    driver = db_driver(project.dsn.reveal() if project.dsn else "")
    if driver == "psycopg":
        return PostgresReader(project)
    if driver == "clickhouse_connect":
        return ClickHouseReader(project)
    raise ValueError(f"project {project.label}: unsupported DSN scheme (postgresql:// or clickhouse://)")
