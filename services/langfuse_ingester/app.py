"""langfuse-ingester's I/O edges: read settled buckets (API or DB), keep ledgers in JetStream KV, publish snapshots."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from inferwatch.contracts.langfuse import (
    LangfuseProjectSnapshot,
    LatencyQuantiles,
    ScoreSummary,
    SessionLengths,
    UsageByKey,
)
from inferwatch.services.langfuse_ingester.config import LangfuseIngesterConfig, LangfuseProject
from inferwatch.services.langfuse_ingester.core import (
    KNOWN_SCORE_TYPES,
    BadRowError,
    BucketRows,
    EndpointPlan,
    Ledger,
    Segmentation,
    SnapshotParts,
    bucket_contribution,
    fallback,
    initial_plan,
    iso,
    parse_major,
    parse_observation,
    parse_score,
    parse_trace,
    plan_cycle,
    snapshot_parts,
)
from inferwatch.services.langfuse_ingester.db import db_reader
from inferwatch.shared.bus import Bus
from inferwatch.shared.http import (
    BreakerPolicy,
    CallPolicy,
    Limits,
    Outcome,
    RetryPolicy,
    UpstreamClient,
    UpstreamError,
    UpstreamMetrics,
)
from inferwatch.shared.kv import open_bucket
from inferwatch.shared.loop import run_every
from inferwatch.shared.service import ServiceContext
from inferwatch.shared.tls import TlsPolicy

log = logging.getLogger("inferwatch.langfuse_ingester")

MAX_PAGES = 10_000
LOOKBACK_S = 3600.0  # traces read before a bucket, only to attribute its observations to users
RETENTION_TTL_S = 3600.0

RowT = TypeVar("RowT")


class Reader(Protocol):
    """One project's source: Langfuse's public API or its database."""

    server_version: str
    retention_days: int

    async def prepare(self) -> None:
        """Detect the version (and endpoints) and read the retention; raise on failure."""

    async def read(self, start: float, end: float) -> BucketRows:
        """Every row of ``[start, end)``."""

    def endpoints(self) -> list[str]:
        """Endpoints or tables in use."""

    async def aclose(self) -> None:
        """Release connections."""


def _parse_rows(items: list[Any], parse: Callable[[Any], RowT], bad: dict[str, float]) -> list[RowT]:
    """The items ``parse`` accepts; the rejected ones are counted in ``bad`` by reason."""
    rows: list[RowT] = []
    for item in items:
        try:
            rows.append(parse(item))
        except BadRowError as exc:
            bad[exc.reason] = bad.get(exc.reason, 0.0) + 1
    return rows


class EndpointMissingError(Exception):
    """An endpoint answered 404 as a whole (absent in this version or mode)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class ApiReader:
    """Reads through ``/api/public`` with basic auth; picks endpoints by version and falls back on 404."""

    def __init__(self, project: LangfuseProject, config: LangfuseIngesterConfig, metrics: UpstreamMetrics) -> None:
        self.project = project
        self.config = config
        auth = (project.public_key, project.secret_key.reveal()) if project.secret_key else None
        self.client = UpstreamClient(
            "langfuse",
            project.url,
            metrics=metrics,
            auth=auth,
            policy=CallPolicy(
                limits=Limits(timeout_s=config.timeout_s),
                retry=RetryPolicy(attempts=2),
                breaker=BreakerPolicy(failure_threshold=5, reset_after_s=30.0),
            ),
            tls=TlsPolicy.from_ca_path(config.tls_ca_file, insecure=config.insecure),
        )
        self.server_version = ""
        self.retention_days = 0
        self.plan: EndpointPlan | None = None
        self._retention_read_at = -1e18

    def endpoints(self) -> list[str]:
        """Endpoints of the current plan."""
        if self.plan is None:
            return []
        return [e for e in (self.plan.traces, self.plan.observations, self.plan.scores) if e]

    async def prepare(self) -> None:
        """``/health`` → version → plan (once); ``/projects`` → ``retentionDays`` (hourly)."""
        if self.plan is None:
            health = await self.client.get_json("/api/public/health", endpoint="/api/public/health")
            version = str(health.get("version", "")) if isinstance(health, dict) else ""
            self.server_version = version
            self.plan = initial_plan(parse_major(version))
        if time.monotonic() - self._retention_read_at >= RETENTION_TTL_S:
            try:
                projects = await self.client.get_json("/api/public/projects", endpoint="/api/public/projects")
            except UpstreamError as exc:
                if exc.status != 404:
                    raise
                projects = {}
            data = projects.get("data") if isinstance(projects, dict) else None
            days = 0
            if isinstance(data, list) and data and isinstance(data[0], dict):
                raw = data[0].get("retentionDays")
                days = int(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) and raw > 0 else 0
            self.retention_days = days
            self._retention_read_at = time.monotonic()

    async def read(self, start: float, end: float) -> BucketRows:
        """All rows of one bucket, falling back to other endpoints when one is missing (404)."""
        for _ in range(4):
            assert self.plan is not None
            try:
                return await self._read(self.plan, start, end)
            except EndpointMissingError as missing:
                replacement = fallback(self.plan, missing.path)
                if replacement is None:
                    raise UpstreamError("langfuse", missing.path, Outcome.HTTP_404, status=404) from None
                log.info(
                    "endpoint missing, falling back",
                    extra={
                        "project": self.project.label,
                        "missing": missing.path,
                        "now": [replacement.traces, replacement.observations, replacement.scores],
                    },
                )
                self.plan = replacement
        raise UpstreamError("langfuse", "plan", Outcome.HTTP_404, status=404)

    async def _read(self, plan: EndpointPlan, start: float, end: float) -> BucketRows:
        rows = BucketRows(traces_from_roots=not plan.traces)
        bad = rows.bad_rows
        if plan.traces:
            window = {"fromTimestamp": iso(start - LOOKBACK_S), "toTimestamp": iso(end)}
            for t in _parse_rows(await self._offset(plan.traces, window, bad), parse_trace, bad):
                if t.timestamp >= start:
                    rows.traces.append(t)
                else:
                    rows.context_traces[t.id] = t
        window = {"fromStartTime": iso(start), "toStartTime": iso(end)}
        if plan.cursor_observations:
            items = await self._cursor(
                plan.observations, {**window, "fields": "core,basic,time,model,usage,metrics,trace_context"}, limit=1000
            )
        else:
            items = await self._offset(plan.observations, window, bad)
        rows.observations = _parse_rows(items, parse_observation, bad)
        score_window = {"fromTimestamp": iso(start), "toTimestamp": iso(end)}
        if plan.cursor_scores:
            items = await self._cursor(plan.scores, score_window, limit=100)
        else:
            items = await self._offset(plan.scores, score_window, bad)
        rows.scores = _parse_rows(items, parse_score, bad)
        return rows

    async def _get(self, path: str, params: Mapping[str, str | int | float]) -> dict[str, Any]:
        try:
            body = await self.client.get_json(path, endpoint=path, params=params)
        except UpstreamError as exc:
            if exc.status == 404:
                raise EndpointMissingError(path) from None
            raise
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise UpstreamError("langfuse", path, Outcome.INVALID_BODY)
        return body

    async def _offset(self, path: str, params: dict[str, str], bad: dict[str, float]) -> list[Any]:
        """Every page: ``totalPages`` ends the walk, not a short page (scores v2 drops invalid rows).

        Rows the server counted in ``totalItems`` but left out of ``data`` are counted as
        ``server_dropped_rows`` in ``bad``.
        """
        out: list[Any] = []
        page = 1
        total_items = 0
        while page <= MAX_PAGES:
            body = await self._get(path, {**params, "page": page, "limit": self.config.page_limit})
            out.extend(body["data"])
            meta: dict[str, Any] = body["meta"] if isinstance(body.get("meta"), dict) else {}
            raw_total = meta.get("totalItems")
            total_items = raw_total if isinstance(raw_total, int) else 0
            total_pages = meta.get("totalPages")
            if not isinstance(total_pages, int) or page >= total_pages or (not body["data"] and total_pages == 0):
                break
            page += 1
        if total_items > len(out):
            bad["server_dropped_rows"] = bad.get("server_dropped_rows", 0.0) + total_items - len(out)
        return out

    async def _cursor(self, path: str, params: dict[str, str], *, limit: int) -> list[Any]:
        """Every page until ``meta.cursor`` is absent."""
        out: list[Any] = []
        cursor = ""
        for _ in range(MAX_PAGES):
            query: dict[str, str | int] = {**params, "limit": limit}
            if cursor:
                query["cursor"] = cursor
            body = await self._get(path, query)
            out.extend(body["data"])
            meta = body["meta"] if isinstance(body.get("meta"), dict) else {}
            cursor = meta.get("cursor") or ""
            if not isinstance(cursor, str) or not cursor:
                break
        return out

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()


class LedgerStore(Protocol):
    """Where ledgers live between restarts."""

    async def load(self, label: str) -> Ledger | None:
        """The saved ledger, or None."""

    async def save(self, label: str, ledger: Ledger) -> None:
        """Save atomically (one value)."""


class KvLedgerStore:
    """Ledgers in a JetStream key-value bucket: one key per project, one atomic put per cycle."""

    def __init__(self, kv: Any) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, bus: Bus, bucket: str) -> KvLedgerStore:
        """Open (or create, replicated on a cluster) the bucket."""
        return cls(await open_bucket(bus, bucket))

    @staticmethod
    def key_for(label: str) -> str:
        """KV key of a project label (KV keys allow ``[-/_=.a-zA-Z0-9]``)."""
        return "ledger." + re.sub(r"[^-_=a-zA-Z0-9]", "_", label)

    async def load(self, label: str) -> Ledger | None:
        """Read the ledger (None when absent)."""
        from nats.js.errors import KeyNotFoundError

        try:
            entry = await self.kv.get(self.key_for(label))
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        return Ledger.from_json(json.loads(entry.value))

    async def save(self, label: str, ledger: Ledger) -> None:
        """Write the whole ledger in one put."""
        await self.kv.put(self.key_for(label), json.dumps(ledger.to_json(), separators=(",", ":")).encode())


@dataclass
class ProjectState:
    """One project's reader, ledger and error counts."""

    project: LangfuseProject
    reader: Reader
    ledger: Ledger | None = None
    errors_total: dict[str, float] = field(default_factory=dict)
    error: str = ""


class LangfuseIngester:
    """Runs the cycle for every project."""

    def __init__(
        self, config: LangfuseIngesterConfig, ctx: ServiceContext, store: LedgerStore, clock: Any = time.time
    ) -> None:
        self.config = config
        self.ctx = ctx
        self.store = store
        self.clock = clock
        self.metrics = UpstreamMetrics.of(ctx.registry)
        self.projects: list[ProjectState] = [ProjectState(p, self._reader(p)) for p in config.projects]
        ctx.targets = len(self.projects)

    def _reader(self, project: LangfuseProject) -> Reader:
        if self.config.mode == "db":
            return db_reader(project)
        return ApiReader(project, self.config, self.metrics)

    async def cycle_project(self, state: ProjectState) -> LangfuseProjectSnapshot:
        """Read due buckets, save the ledger, build the snapshot. Failures keep the last saved ledger."""
        label = state.project.label
        try:
            if state.ledger is None:
                state.ledger = await self.store.load(label) or Ledger()
            await state.reader.prepare()
            now = self.clock()
            c = self.config
            plan = plan_cycle(
                state.ledger,
                now,
                bucket_s=c.bucket_s,
                settle_s=c.settle_s,
                recheck_s=c.recheck_s,
                backfill_s=c.backfill_s,
                retention_days=state.reader.retention_days,
                max_new=c.max_new_buckets,
            )
            work = copy.deepcopy(state.ledger)
            for start in plan.recheck + plan.new:
                rows = await state.reader.read(start, start + c.bucket_s)
                work.put(
                    bucket_contribution(
                        start,
                        start + c.bucket_s,
                        rows,
                        tracked_users=work.tracked_users,
                        top_n_users=c.top_n_users,
                        segmentation=Segmentation(c.segment_tag_prefix, c.segment_metadata_key),
                        tracked_trace_names=work.tracked_trace_names,
                        max_trace_names=c.max_trace_names,
                    )
                )
                if start in plan.new:
                    work.watermark = start + c.bucket_s
            work.fold_before(plan.horizon)
            if plan.new or plan.recheck:
                await self.store.save(label, work)
            state.ledger = work
            state.error = ""
        except UpstreamError as exc:
            state.error = exc.outcome.value
        except (OSError, ValueError) as exc:
            state.error = "db_error" if str(exc).startswith(("postgres:", "clickhouse:")) else type(exc).__name__
            log.warning("cycle failed", extra={"project": label, "error": str(exc)[:200]})
        if state.error:
            state.errors_total[state.error] = state.errors_total.get(state.error, 0.0) + 1
        return self.snapshot(state)

    def snapshot(self, state: ProjectState) -> LangfuseProjectSnapshot:
        """The project's snapshot from its ledger."""
        ledger = state.ledger or Ledger()
        parts = snapshot_parts(ledger)
        usage = [
            UsageByKey(
                model=model,
                user=user,
                segment=segment,
                traces_total=f.get("traces", 0.0),
                observations_total=f.get("observations", 0.0),
                error_observations_total=f.get("errors", 0.0),
                input_tokens_total=f.get("input_tokens", 0.0),
                output_tokens_total=f.get("output_tokens", 0.0),
                total_tokens_total=f.get("total_tokens", 0.0),
                cost_usd_total=f.get("cost_usd", 0.0),
            )
            for (model, user, segment), f in sorted(parts.usage.items())
        ]
        scores = []
        for (name, data_type), f in sorted(parts.scores.items()):
            count = f.get("count", 0.0)
            total = f.get("sum", 0.0)
            scores.append(
                ScoreSummary(
                    name=name,
                    data_type=KNOWN_SCORE_TYPES[data_type],  # the ledger holds only rows of known types
                    count=count,
                    nulls=f.get("nulls", 0.0),
                    sum=total,
                    mean=total / count if count and data_type != "CATEGORICAL" else None,
                    categories=f.get("categories", {}),
                    distribution=f.get("distribution", {}),
                )
            )
        latency = [
            LatencyQuantiles(model=m, trace_name=n, p50_s=q[0], p90_s=q[1], p99_s=q[2])
            for (m, n), q in sorted(parts.latency.items())
        ]
        return LangfuseProjectSnapshot(
            source=state.project.label,
            observed_at=time.time(),
            collector=self.ctx.instance,
            interval_s=self.config.interval_s,
            up=not state.error,
            error=state.error,
            server_version=state.reader.server_version,
            mode=self.config.mode,
            watermark=ledger.watermark,
            retention_days=state.reader.retention_days,
            usage=usage,
            unique_users=float(parts.unique_users),
            unique_sessions=float(parts.unique_sessions),
            latency=latency,
            scores=scores,
            activity_by_hour=parts.activity,
            bad_rows_total=parts.bad_rows,
            errors_total=dict(state.errors_total),
            endpoints=state.reader.endpoints(),
            observations_by_type_total=parts.observation_types,
            observations_by_level_total=parts.observation_levels,
            traces_by_name_total=parts.trace_names,
            session_traces_total=parts.session_traces,
            session_lengths=_session_lengths(parts),
        )

    async def cycle(self) -> None:
        """One cycle over every project; one project's failure never stops the others."""
        results = await asyncio.gather(*(self.cycle_project(s) for s in self.projects), return_exceptions=True)
        for state, result in zip(self.projects, results, strict=True):
            if isinstance(result, BaseException):
                log.error("project cycle failed unexpectedly", extra={"project": state.project.label}, exc_info=result)
                continue
            await self.ctx.bus.publish(result)

    async def aclose(self) -> None:
        """Close every reader."""
        for state in self.projects:
            await state.reader.aclose()


async def run(ctx: ServiceContext, config: LangfuseIngesterConfig) -> None:
    """Cycle every interval until stopped."""
    if not config.projects:
        ctx.set_ready(True, "idle: no Langfuse project configured")
        await ctx.stop.wait()
        return
    store: LedgerStore | None = None
    while store is None:
        try:
            store = await KvLedgerStore.open(ctx.bus, config.kv_bucket)
        except Exception as exc:
            ctx.set_ready(False, f"JetStream key-value unavailable: {type(exc).__name__}")
            if await ctx.sleep(5.0):
                return
    ingester = LangfuseIngester(config, ctx, store)
    ctx.set_ready(True, f"ingesting {len(ingester.projects)} Langfuse projects ({config.mode} mode)")
    try:
        await run_every(config.interval_s, ingester.cycle, ctx.sleep)
    finally:
        await ingester.aclose()


def _session_lengths(parts: SnapshotParts) -> SessionLengths | None:
    if parts.session_lengths is None:
        return None
    sessions, traces, durations = parts.session_lengths
    return SessionLengths(
        sessions=sessions,
        traces_p50=traces[0],
        traces_p90=traces[1],
        traces_p99=traces[2],
        duration_p50_s=durations[0],
        duration_p90_s=durations[1],
        duration_p99_s=durations[2],
    )
