"""A Langfuse server simulator: v2, v3 and v4 (``events_only``) API shapes from one deterministic data set.

The data set (:func:`make_dataset`) holds traces, observations and scores with an ingestion lag per row
(``visible_at``: a row is invisible before) and late corrections (an observation's cost and level change at
``updated_at``), so a reader sees what a real server shows while data arrives. Each server major serves
the endpoints it really has and answers 404 (with the real bodies) on the others:

* ``2``: ``/traces``, ``/observations``, ``/scores`` (``value`` may be null), ``/projects``.
* ``3``: v2 plus ``/v2/scores`` and ``/v3/scores``; ``/v2/observations`` is 404 (no v4 preview opt-in).
* ``4`` (``events_only``): ``/v2/observations`` and ``/v3/scores``; the legacy routes are 404.

:meth:`SimulatedLangfuse.totals` gives the source's own totals for exactness checks.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

PROJECT_ID = "cm7x2k9q10003lf0pr0j3ct01"
VERSIONS = {2: "2.95.12", 3: "3.225.4", 4: "4.16.0"}
EVENTS_ONLY_404 = {
    "message": "This endpoint is not available on deployments running in Langfuse v4 events_only "
    "mode. Learn more about Langfuse v4 at: https://langfuse.com/docs/v4"
}
V2_API_404 = {
    "message": "The metrics v2 API is only available in a Langfuse v4 write mode. Learn more at: "
    "https://langfuse.com/docs/v4",
    "error": "LangfuseNotFoundError",
}
UNAUTHORIZED = {"message": "Invalid credentials. Confirm that you've configured the correct host."}
MODELS = (("gpt-4o-2024-08-06", 2.5e-06, 1e-05), ("gpt-4o-mini", 1.5e-07, 6e-07), ("llama-3.1-8b", 1e-07, 1e-07))
TRACE_NAMES = ("chat-completion", "rag-query", "embed-docs")
USERS = 8
"""Distinct users of a generated dataset (sessions: twice as many)."""


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{round(ts * 1000) % 1000:03d}Z"


def _parse(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


V2_OBSERVATION_TYPES = frozenset({"SPAN", "GENERATION", "EVENT"})


@dataclass
class SimTrace:
    """A trace of the data set."""

    id: str
    timestamp: float
    name: str
    user_id: str | None
    session_id: str | None
    tags: list[str]
    metadata: dict[str, Any]
    visible_at: float


@dataclass
class SimObservation:
    """An observation (root SPAN, GENERATION, EVENT, TOOL, AGENT…) of the data set; ``late_*`` apply from
    ``updated_at``."""

    id: str
    trace_id: str
    parent_id: str | None
    type: str
    name: str
    start: float
    end: float
    model: str | None
    usage: dict[str, int]
    cost: dict[str, float]
    level: str
    visible_at: float
    updated_at: float = math.inf
    late_cost: dict[str, float] | None = None
    late_level: str | None = None

    def cost_at(self, now: float) -> dict[str, float]:
        """Cost details as visible at ``now``."""
        return self.late_cost if self.late_cost is not None and now >= self.updated_at else self.cost

    def level_at(self, now: float) -> str:
        """Level as visible at ``now``."""
        return self.late_level if self.late_level is not None and now >= self.updated_at else self.level


@dataclass
class SimScore:
    """A score; ``data_type`` may be TEXT (unknown to the analytics), ``value`` None (a v2 null numeric)."""

    id: str
    trace_id: str
    timestamp: float
    name: str
    data_type: str
    value: float | None
    string_value: str | None
    visible_at: float


@dataclass
class Dataset:
    """Everything the server holds (deterministic for a seed)."""

    traces: list[SimTrace] = field(default_factory=list)
    observations: list[SimObservation] = field(default_factory=list)
    scores: list[SimScore] = field(default_factory=list)

    def for_major(self, major: int) -> Dataset:
        """What a server of that major can hold: before v3 only SPAN, GENERATION and EVENT observations exist."""
        if major >= 3:
            return self
        kept = [o for o in self.observations if o.type in V2_OBSERVATION_TYPES]
        return Dataset(traces=self.traces, observations=kept, scores=self.scores)


def make_dataset(
    seed: int,
    start: float,
    end: float,
    *,
    traces_per_s: float = 2.0,
    max_lag_s: float = 0.0,
    update_after_s: float = 0.0,
    error_rate: float = 0.1,
    score_floor: float = 0.0,
) -> Dataset:
    """Traces in ``[start, end)``: each with a root SPAN, 1-2 GENERATIONs (one may be ERROR), 0-3 scores and
    0-3 more children (an EVENT at level DEBUG or WARNING, a TOOL call and an AGENT step: the last two are
    types Langfuse v3 added, which `Dataset.for_major` leaves out for a v2 server or database).

    ``error_rate``: share of GENERATIONs at level ERROR. ``score_floor``: NUMERIC scores are uniform in
    ``[score_floor, 1]``.

    ``max_lag_s``: rows become visible up to this long after their event time (ingestion lag).
    ``update_after_s``: when > 0, every fifth generation gets a corrected cost (and level) this long after
    its start (a late update a reader must pick up on re-check).
    """
    rng = random.Random(seed)
    data = Dataset()
    count = int((end - start) * traces_per_s)
    for i in range(count):
        ts = start + (end - start) * (i + rng.random() * 0.5) / max(count, 1)
        ts = round(ts, 3)
        if ts >= end:
            continue
        trace_id = f"{seed:04x}{i:028x}"
        user = f"user-{rng.randrange(USERS):04d}" if rng.random() < 0.9 else None
        session = f"sess-{rng.randrange(USERS * 2):04x}" if rng.random() < 0.7 else None
        tier = rng.choice(("gold", "free"))
        lag = rng.random() * max_lag_s
        data.traces.append(
            SimTrace(
                id=trace_id,
                timestamp=ts,
                name=rng.choice(TRACE_NAMES),
                user_id=user,
                session_id=session,
                tags=["chat", f"tier:{tier}"],
                metadata={"tenant": rng.choice(("acme", "globex"))},
                visible_at=ts + lag,
            )
        )
        root_id = f"r{i:015x}"
        duration = round(0.2 + rng.random() * 4, 3)
        root = SimObservation(
            id=root_id,
            trace_id=trace_id,
            parent_id=None,
            type="SPAN",
            name="handle",
            start=ts,
            end=round(ts + duration, 3),
            model=None,
            usage={},
            cost={},
            level="DEFAULT",
            visible_at=ts + lag,
        )
        data.observations.append(root)
        for g in range(rng.randint(1, 2)):
            model, p_in, p_out = rng.choice(MODELS)
            inp, cached, out = rng.randint(50, 3000), rng.choice((0, 0, 128)), rng.randint(10, 800)
            usage = {"input": inp, "output": out, "total": inp + cached + out}
            cost = {"input": round(inp * p_in, 9), "output": round(out * p_out, 9)}
            if cached:
                usage["input_cached_tokens"] = cached
                cost["input_cached_tokens"] = round(cached * p_in / 10, 9)
            cost["total"] = round(sum(cost.values()), 9)
            g_start = round(ts + 0.001 * (g + 1), 3)
            obs = SimObservation(
                id=f"g{i:013x}{g:02x}",
                trace_id=trace_id,
                parent_id=root_id,
                type="GENERATION",
                name="llm-call",
                start=g_start,
                end=round(g_start + rng.random() * duration, 3),
                model=model,
                usage=usage,
                cost=cost,
                level="ERROR" if rng.random() < error_rate else "DEFAULT",
                visible_at=g_start + rng.random() * max_lag_s,
            )
            if update_after_s > 0 and (i + g) % 5 == 0:
                obs.updated_at = g_start + update_after_s
                obs.late_cost = {k: round(v * 2, 9) for k, v in cost.items()}
                obs.late_level = "ERROR"
            data.observations.append(obs)
        _children(data, root, seed, i)
        for s in range(rng.choice((0, 1, 1, 2, 3))):
            kind = (
                ("helpfulness", "NUMERIC"),
                ("user_feedback", "BOOLEAN"),
                ("sentiment", "CATEGORICAL"),
                ("note", "TEXT"),
            )
            name, data_type = kind[(i + s) % 4]
            value: float | None
            string_value: str | None = None
            if data_type == "NUMERIC":  # Langfuse v2 (Postgres) allows a null value; v3+ never stores one
                value = None if rng.random() < 0.2 else round(score_floor + (1 - score_floor) * rng.random(), 3)
            elif data_type == "BOOLEAN":
                value = float(rng.random() < 0.7)
                string_value = "True" if value else "False"
            elif data_type == "CATEGORICAL":
                value = 0.0
                string_value = rng.choice(("positive", "neutral", "negative"))
            else:
                value, string_value = None, "free text"
            data.scores.append(
                SimScore(
                    id=f"s{i:013x}{s:02x}",
                    trace_id=trace_id,
                    timestamp=round(ts + 0.5, 3),
                    name=name,
                    data_type=data_type,
                    value=value,
                    string_value=string_value,
                    visible_at=ts + 0.5 + lag,
                )
            )
    return data


def _children(data: Dataset, root: SimObservation, seed: int, i: int) -> None:
    """The EVENT/TOOL/AGENT children of trace ``i``'s root span, from a random stream of their own (the rows drawn
    before them keep their values for a seed)."""
    rng = random.Random(f"{seed}:{i}:children")
    ts, duration, lag = root.start, root.end - root.start, root.visible_at - root.start
    for n, (kind, name) in enumerate((("EVENT", "retrieved-context"), ("TOOL", "web-search"), ("AGENT", "planner"))):
        if rng.random() >= 0.5:
            continue
        roll = rng.random()
        level = "WARNING" if roll < 0.15 else "DEBUG" if kind == "EVENT" and roll < 0.6 else "DEFAULT"
        start = round(ts + 0.002 + 0.001 * n, 3)
        data.observations.append(
            SimObservation(
                id=f"c{i:013x}{n:02x}",
                trace_id=root.trace_id,
                parent_id=root.id,
                type=kind,
                name=name,
                start=start,
                end=start if kind == "EVENT" else round(start + rng.random() * duration / 2, 3),
                model=None,
                usage={},
                cost={},
                level=level,
                visible_at=start + lag,
            )
        )


class SimulatedLangfuse:
    """One simulated Langfuse server (one project).

    Attributes:
        major: 2, 3 or 4 (v4 runs ``events_only``).
        public_key / secret_key: the accepted basic-auth pair.
        fault: ``""``, ``"500"``, ``"timeout"`` (hang), ``"strings"`` (numbers as JSON strings).
        retention_days: returned by ``/projects`` when > 0.
        reported_version: what ``/health`` says (tests make it lie to exercise the 404 fallbacks).
    """

    def __init__(
        self,
        data: Dataset,
        *,
        major: int = 4,
        public_key: str = "pk-lf-sim",
        secret_key: str = "sk-lf-sim",
        retention_days: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.data = data
        self.major = major
        self.public_key = public_key
        self.secret_key = secret_key
        self.retention_days = retention_days
        self.clock = clock
        self._fault = ""
        self._cleared = asyncio.Event()
        self._cleared.set()
        self.reported_version = VERSIONS[major]
        self.requests: dict[str, int] = {}
        self._original: dict[tuple[str, str], Any] = {}  # rows an alert scenario changed: their former values

    @property
    def fault(self) -> str:
        """The fault in force (``""`` for none)."""
        return self._fault

    @fault.setter
    def fault(self, value: str) -> None:
        self._fault = value
        if value == "timeout":
            self._cleared.clear()
        else:
            self._cleared.set()

    # ---- alert scenarios

    EFFECTS = ("errors", "slow", "low_scores")

    def affect(self, effect: str, on: bool, since: float | None = None) -> None:
        """Change the rows of event time ``since`` (default now) onwards: ``errors``: GENERATIONs end at level
        ERROR; ``slow``: GENERATIONs take 30 s longer; ``low_scores``: NUMERIC scores fall to a fifth.
        ``on=False`` restores the rows from ``since`` on (earlier ones keep what they had)."""
        if effect not in self.EFFECTS:
            raise ValueError(f"unknown effect {effect!r}")
        since = self.clock() if since is None else since
        original = self._original
        if effect == "low_scores":
            for sc in self.data.scores:
                if sc.timestamp >= since and sc.data_type == "NUMERIC" and sc.value is not None:
                    self._swap(original, (effect, sc.id), sc, "value", round(sc.value / 5, 3), on)
            return
        for o in self.data.observations:
            if o.start >= since and o.type == "GENERATION":
                if effect == "errors":
                    self._swap(original, (effect, o.id), o, "level", "ERROR", on)
                else:
                    self._swap(original, (effect, o.id), o, "end", round(o.end + 30.0, 3), on)

    @staticmethod
    def _swap(original: dict[Any, Any], key: tuple[str, str], row: Any, attr: str, value: Any, on: bool) -> None:
        if on and key not in original:
            original[key] = getattr(row, attr)
            setattr(row, attr, value)
        elif not on and key in original:
            setattr(row, attr, original.pop(key))

    # ---- the source's own truth

    def kinds(self, start: float, end: float) -> dict[str, dict[str, float]]:
        """The data set's own counts over event time ``[start, end)`` (final values) by observation ``type`` and
        ``level``, by ``trace_name``, and ``session_traces`` (``{"": traces with a session}``)."""
        out: dict[str, dict[str, float]] = {"type": {}, "level": {}, "trace_name": {}, "session_traces": {}}

        def add(kind: str, label: str) -> None:
            out[kind][label] = out[kind].get(label, 0.0) + 1.0

        for t in self.data.traces:
            if start <= t.timestamp < end:
                add("trace_name", t.name)
                if t.session_id:
                    add("session_traces", "")
        for o in self.data.observations:
            if start <= o.start < end:
                add("type", o.type)
                add("level", o.level_at(math.inf))
        return out

    def totals(self, start: float, end: float) -> dict[str, float]:
        """The data set's own sums over event time ``[start, end)`` (final values)."""
        out = {
            "traces": 0.0,
            "observations": 0.0,
            "errors": 0.0,
            "input_tokens": 0.0,
            "output_tokens": 0.0,
            "total_tokens": 0.0,
            "cost_usd": 0.0,
            "scores_counted": 0.0,
            "score_nulls": 0.0,
            "score_unknown_type": 0.0,
        }
        for t in self.data.traces:
            if start <= t.timestamp < end:
                out["traces"] += 1
        for o in self.data.observations:
            if start <= o.start < end:
                out["observations"] += 1
                out["errors"] += o.level_at(math.inf) == "ERROR"
                out["input_tokens"] += sum(v for k, v in o.usage.items() if "input" in k)
                out["output_tokens"] += sum(v for k, v in o.usage.items() if "output" in k)
                out["total_tokens"] += o.usage.get("total", 0)
                out["cost_usd"] += o.cost_at(math.inf).get("total", 0.0)
        for s in self.data.scores:
            if start <= s.timestamp < end:
                if s.data_type == "TEXT":
                    out["score_unknown_type"] += self.major >= 3  # Langfuse v2 has no TEXT scores
                elif s.data_type == "NUMERIC" and s.value is None:
                    out["score_nulls"] += self.major == 2  # only Langfuse v2 serves null values
                else:
                    out["scores_counted"] += 1
        return out

    # ---- rendering

    def _num(self, value: float | int) -> Any:
        return str(value) if self.fault == "strings" else value

    def _obs_for(self, trace_id: str, now: float) -> list[SimObservation]:
        return [o for o in self.data.observations if o.trace_id == trace_id and o.visible_at <= now]

    def _trace_json(self, t: SimTrace, now: float) -> dict[str, Any]:
        obs = self._obs_for(t.id, now)
        latency = (max(o.end for o in obs) - min(o.start for o in obs)) if obs else 0
        doc: dict[str, Any] = {
            "id": t.id,
            "timestamp": _iso(t.timestamp),
            "name": t.name,
            "userId": t.user_id,
            "metadata": t.metadata,
            "release": None,
            "version": None,
            "projectId": PROJECT_ID,
            "public": False,
            "bookmarked": False,
            "tags": t.tags,
            "input": None,
            "output": None,
            "sessionId": t.session_id,
            "createdAt": _iso(t.visible_at),
            "updatedAt": _iso(t.visible_at),
            "observations": [o.id for o in obs],
            "scores": [s.id for s in self.data.scores if s.trace_id == t.id and s.visible_at <= now],
            "totalCost": self._num(round(sum(o.cost_at(now).get("total", 0.0) for o in obs), 9)),
            "latency": round(latency, 3),
            "htmlPath": f"/project/{PROJECT_ID}/traces/{t.id}",
            "externalId": None,
        }
        if self.major >= 3:
            doc["environment"] = "default"
        return doc

    def _obs_v1_json(self, o: SimObservation, now: float) -> dict[str, Any]:
        cost = o.cost_at(now)
        total = o.usage.get("total", 0)
        doc: dict[str, Any] = {
            "id": o.id,
            "projectId": PROJECT_ID,
            "traceId": o.trace_id,
            "parentObservationId": o.parent_id,
            "name": o.name,
            "type": o.type,
            "startTime": _iso(o.start),
            "endTime": _iso(o.end),
            "completionStartTime": None,
            "version": None,
            "createdAt": _iso(o.visible_at),
            "updatedAt": _iso(max(o.visible_at, o.updated_at if now >= o.updated_at else o.visible_at)),
            "input": None,
            "output": None,
            "metadata": {},
            "level": o.level_at(now),
            "statusMessage": None,
            "model": o.model,
            "modelParameters": None,
            "promptId": None,
            "usage": {
                "unit": "TOKENS",
                "input": sum(v for k, v in o.usage.items() if "input" in k),
                "output": o.usage.get("output", 0),
                "total": total,
            },
            "unit": "TOKENS",
            "promptTokens": o.usage.get("input", 0),
            "completionTokens": o.usage.get("output", 0),
            "totalTokens": total,
            "modelId": None,
            "inputPrice": None,
            "outputPrice": None,
            "totalPrice": None,
            "calculatedInputCost": cost.get("input"),
            "calculatedOutputCost": cost.get("output"),
            "calculatedTotalCost": cost.get("total", 0),
            "latency": round(o.end - o.start, 3),
            "timeToFirstToken": None,
        }
        if self.major >= 3:
            doc.update(
                {
                    "environment": "default",
                    "promptName": None,
                    "promptVersion": None,
                    "usageDetails": {k: self._num(v) for k, v in o.usage.items()},
                    "costDetails": cost,
                    "usagePricingTierName": None,
                    "usagePricingTierId": None,
                }
            )
        return doc

    def _obs_v2_json(self, o: SimObservation, now: float) -> dict[str, Any]:
        trace = next((t for t in self.data.traces if t.id == o.trace_id), None)
        cost = o.cost_at(now)
        return {
            "id": o.id,
            "traceId": o.trace_id,
            "startTime": _iso(o.start),
            "endTime": _iso(o.end),
            "projectId": PROJECT_ID,
            "parentObservationId": o.parent_id,
            "type": o.type,
            "name": o.name,
            "level": o.level_at(now),
            "statusMessage": None,
            "version": None,
            "environment": "default",
            "bookmarked": False,
            "public": False,
            "userId": trace.user_id if trace else None,
            "sessionId": trace.session_id if trace else None,
            "traceName": trace.name if trace else None,
            "tags": trace.tags if trace else [],
            "isRootObservation": o.parent_id is None,
            "completionStartTime": None,
            "createdAt": _iso(o.visible_at),
            "updatedAt": _iso(o.visible_at),
            "model": o.model,
            "internalModelId": None,
            "modelParameters": None,
            "usageDetails": {k: self._num(v) for k, v in o.usage.items()},
            "inputUsage": sum(v for k, v in o.usage.items() if "input" in k),
            "outputUsage": o.usage.get("output", 0),
            "totalUsage": o.usage.get("total", 0),
            "costDetails": cost,
            "inputCost": cost.get("input"),
            "outputCost": cost.get("output"),
            "totalCost": cost.get("total", 0),
            "usagePricingTierId": None,
            "usagePricingTierName": None,
            "promptId": None,
            "promptName": None,
            "promptVersion": None,
            "latency": round(o.end - o.start, 3),
            "timeToFirstToken": None,
            "modelId": None,
            "inputPrice": None,
            "outputPrice": None,
            "totalPrice": None,
        }

    def _score_json(self, s: SimScore, style: str) -> dict[str, Any]:
        trace = next((t for t in self.data.traces if t.id == s.trace_id), None)
        base: dict[str, Any] = {
            "id": s.id,
            "projectId": PROJECT_ID,
            "name": s.name,
            "dataType": s.data_type,
            "source": "API",
            "timestamp": _iso(s.timestamp),
            "createdAt": _iso(s.visible_at),
            "updatedAt": _iso(s.visible_at),
            "comment": None,
            "configId": None,
        }
        if style == "v1":  # Langfuse v2 server: value nullable, no environment
            base.update(
                {
                    "value": s.value,
                    "traceId": s.trace_id,
                    "observationId": None,
                    "authorUserId": None,
                    "stringValue": s.string_value,
                    "queueId": None,
                    "trace": {"userId": trace.user_id if trace else None, "tags": trace.tags if trace else []},
                }
            )
            return base
        if style == "v2":
            value = 0.0 if s.value is None else s.value
            base.update(
                {
                    "value": value,
                    "environment": "default",
                    "authorUserId": None,
                    "metadata": {},
                    "queueId": None,
                    "traceId": s.trace_id,
                    "observationId": None,
                    "sessionId": None,
                    "datasetRunId": None,
                    "stringValue": s.string_value,
                    "trace": {
                        "userId": trace.user_id if trace else None,
                        "tags": trace.tags if trace else [],
                        "environment": "default",
                        "sessionId": trace.session_id if trace else None,
                    },
                }
            )
            if s.data_type == "TEXT":
                base.pop("value")
            return base
        v3_value: Any
        if s.data_type == "NUMERIC":
            v3_value = s.value
        elif s.data_type == "BOOLEAN":
            v3_value = bool(s.value)
        else:
            v3_value = s.string_value
        base.update(
            {
                "value": v3_value,
                "environment": "default",
                "metadata": {},
                "subject": {"kind": "trace", "id": s.trace_id},
            }
        )
        return base

    # ---- HTTP

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == self.public_key and password == self.secret_key

    def routes(self) -> list[web.RouteDef]:
        """The aiohttp routes of this server."""
        return [web.get("/api/public/{tail:.*}", self._dispatch)]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"].rstrip("/")
        self.requests[path] = self.requests.get(path, 0) + 1
        if path == "/health":
            return web.json_response({"status": "OK", "version": self.reported_version})
        if self.fault == "timeout":  # hang until the fault is cleared (so the server can still stop)
            await self._cleared.wait()
        if self.fault == "500":
            return web.json_response({"message": "Internal Server Error", "error": "Timeout error."}, status=500)
        if not self._authorized(request):
            return web.json_response(UNAUTHORIZED, status=401)
        now = self.clock()
        q = request.query
        handler = self._handlers().get(path)
        if handler is None:
            return web.json_response({"message": "Not found"}, status=404)
        result = handler(q, now)
        if isinstance(result, web.Response):
            return result
        return web.json_response(result)

    def _handlers(self) -> dict[str, Callable[[Any, float], Any]]:
        m = self.major
        legacy_404 = EVENTS_ONLY_404 if m >= 4 else None
        table: dict[str, Callable[[Any, float], Any]] = {"/projects": self._projects}
        for path, fn, available, missing in (
            ("/traces", self._traces, m <= 3, legacy_404),
            ("/observations", self._observations, m <= 3, legacy_404),
            ("/scores", lambda q, now: self._scores(q, now, "v1"), m <= 3, legacy_404),
            ("/v2/scores", lambda q, now: self._scores(q, now, "v2"), m == 3, legacy_404),
            ("/v3/scores", self._scores_v3, m >= 3, None),
            ("/v2/observations", self._observations_v2, m >= 4, V2_API_404 if m == 3 else None),
        ):
            if available:
                table[path] = fn
            elif missing is not None:
                table[path] = _not_found(missing)
        return table

    def _projects(self, _q: Any, _now: float) -> dict[str, Any]:
        project: dict[str, Any] = {"id": PROJECT_ID, "name": "sim-project", "metadata": {}}
        if m := self.retention_days:
            project["retentionDays"] = m
        if self.major >= 3:
            project["organization"] = {"id": "cm1org0001lf0simorg001", "name": "Sim Org"}
        return {"data": [project]}

    @staticmethod
    def _window(q: Any, lo: str, hi: str) -> tuple[float, float]:
        return _parse(q.get(lo)) or -math.inf, _parse(q.get(hi)) or math.inf

    @staticmethod
    def _page(q: Any, rows: list[Any], to_json: Callable[[Any], dict[str, Any]]) -> dict[str, Any] | web.Response:
        """The ``page``/``limit`` page of ``rows`` as ``{"data": [...], "meta": {...}}``, or a 400 response."""
        try:
            page, limit = int(q.get("page", 1)), int(q.get("limit", 50))
        except ValueError:
            return web.json_response({"message": "Invalid request data", "error": []}, status=400)
        if page < 1 or not 1 <= limit <= 100:
            return web.json_response({"message": "Invalid request data", "error": []}, status=400)
        meta = {"page": page, "limit": limit, "totalItems": len(rows), "totalPages": math.ceil(len(rows) / limit)}
        return {"data": [to_json(r) for r in rows[(page - 1) * limit : page * limit]], "meta": meta}

    def _traces(self, q: Any, now: float) -> Any:
        lo, hi = self._window(q, "fromTimestamp", "toTimestamp")
        rows = sorted(
            (t for t in self.data.traces if lo <= t.timestamp < hi and t.visible_at <= now),
            key=lambda t: (-t.timestamp, t.id),
        )
        return self._page(q, rows, lambda t: self._trace_json(t, now))

    def _observations(self, q: Any, now: float) -> Any:
        lo, hi = self._window(q, "fromStartTime", "toStartTime")
        rows = sorted(
            (o for o in self.data.observations if lo <= o.start < hi and o.visible_at <= now),
            key=lambda o: (-o.start, o.id),
        )
        return self._page(q, rows, lambda o: self._obs_v1_json(o, now))

    def _visible_scores(self, q: Any, now: float) -> list[SimScore]:
        lo, hi = self._window(q, "fromTimestamp", "toTimestamp")
        return sorted(
            (s for s in self.data.scores if lo <= s.timestamp < hi and s.visible_at <= now and self._exists(s)),
            key=lambda s: (-s.timestamp, s.id),
        )

    def _exists(self, s: SimScore) -> bool:
        """TEXT scores exist from v3 on; null values only in v2's Postgres."""
        if self.major == 2:
            return s.data_type != "TEXT"
        return s.value is not None or s.data_type in ("TEXT", "CATEGORICAL")

    def _scores(self, q: Any, now: float, style: str) -> Any:
        rows = self._visible_scores(q, now)
        if style == "v1" and self.major >= 3:
            rows = [s for s in rows if s.data_type in ("NUMERIC", "BOOLEAN", "CATEGORICAL")]
        page = self._page(q, rows, lambda s: self._score_json(s, style))
        if style == "v2" and isinstance(page, dict):
            # the server drops rows its zod schema rejects (TEXT here) but counts them in meta
            page["data"] = [d for d in page["data"] if d["dataType"] != "TEXT"]
        return page

    @staticmethod
    def _cursor(q: Any) -> dict[str, Any] | None:
        raw = q.get("cursor")
        if not raw:
            return None
        padded = raw + "=" * (-len(raw) % 4)
        # obs v2 cursors are standard base64, scores v3 cursors base64url: accept both alphabets
        decoded: dict[str, Any] = json.loads(base64.b64decode(padded.replace("-", "+").replace("_", "/")))
        return decoded

    def _scores_v3(self, q: Any, now: float) -> Any:
        limit = int(q.get("limit", 50))
        if not 1 <= limit <= 100:
            return web.json_response({"message": "Invalid request data", "error": []}, status=400)
        rows = self._visible_scores(q, now)
        if (cur := self._cursor(q)) is not None:
            last = (-(_parse(cur["lastTimestamp"]) or 0.0), cur["lastId"])
            rows = [s for s in rows if (-s.timestamp, s.id) > last]
        page = rows[:limit]
        meta: dict[str, Any] = {"limit": limit}
        if len(rows) > limit:
            token = json.dumps({"lastTimestamp": _iso(page[-1].timestamp), "lastId": page[-1].id})
            meta["cursor"] = base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
        return {"data": [self._score_json(s, "v3") for s in page], "meta": meta}

    def _observations_v2(self, q: Any, now: float) -> Any:
        limit = int(q.get("limit", 50))
        if not 1 <= limit <= 1000:
            return web.json_response({"message": "Invalid request data", "error": []}, status=400)
        lo, hi = self._window(q, "fromStartTime", "toStartTime")
        rows = sorted(
            (o for o in self.data.observations if lo <= o.start < hi and o.visible_at <= now),
            key=lambda o: (-o.start, o.trace_id, o.id),
        )
        if (cur := self._cursor(q)) is not None:
            last = (-(_parse(cur["lastStartTimeTo"]) or 0.0), cur["lastTraceId"], cur["lastId"])
            rows = [o for o in rows if (-o.start, o.trace_id, o.id) > last]
        page = rows[:limit]
        meta: dict[str, Any] = {}
        if len(rows) > limit:
            token = json.dumps(
                {"lastStartTimeTo": _iso(page[-1].start), "lastTraceId": page[-1].trace_id, "lastId": page[-1].id}
            )
            meta["cursor"] = base64.b64encode(token.encode()).decode()
        return {"data": [self._obs_v2_json(o, now) for o in page], "meta": meta}


def _not_found(body: dict[str, Any]) -> Callable[[Any, float], web.Response]:
    def handler(_q: Any, _now: float) -> web.Response:
        return web.json_response(body, status=404)

    return handler


async def serve(sim: SimulatedLangfuse, host: str = "127.0.0.1", port: int = 0) -> tuple[str, web.AppRunner]:
    """Serve one simulated server; returns its base URL and runner."""
    app = web.Application()
    app.add_routes(sim.routes())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = next(a for a in runner.addresses if isinstance(a, tuple))
    return f"http://{host}:{bound[1]}", runner


async def start_demo() -> Any:
    """Hook for ``inferwatch up --demo``: a v4 server with 2 h of history and live traffic.

    The ingester is pointed at it with a short bucket and settling delay so the dashboards fill within minutes.
    Under ``INFERWATCH_SIM_CALM=1``: no history (the score means the ingester reports are lifetime means, which
    history would pin), one trace a second, no ERROR generations, scores of at least 0.6, and 5 s buckets (the
    alert scenarios show within seconds).
    """
    from inferwatch.simulators.demo import Demo
    from inferwatch.simulators.scenarios import CALM_ENV, Scenario

    now = time.time()
    seed = int(os.environ.get("INFERWATCH_LANGFUSE_SIM_SEED", "7"))
    calm = os.environ.get(CALM_ENV) == "1"
    if calm:
        data = make_dataset(seed, now, now + 4 * 3600, traces_per_s=1.0, max_lag_s=2.0, error_rate=0.0, score_floor=0.6)
        timing = {"BUCKET_S": "5", "SETTLE_S": "3", "INTERVAL_S": "5", "RECHECK_S": "30", "BACKFILL_S": "60"}
    else:
        data = make_dataset(seed, now - 7200, now + 86400, traces_per_s=0.2, max_lag_s=5.0)
        timing = {"BUCKET_S": "60", "SETTLE_S": "30", "INTERVAL_S": "15", "BACKFILL_S": "7200"}
    sim = SimulatedLangfuse(data, major=4, retention_days=30)
    url, runner = await serve(sim)
    project = "demo"

    def scenario(name: str, alert: str, effect: str, description: str) -> Scenario:
        return Scenario(
            name,
            alert,
            description,
            lambda: sim.affect(effect, True),
            lambda: sim.affect(effect, False),
            labels={"project": project},
        )

    return Demo(
        env={
            "INFERWATCH_LANGFUSE_URL": url,
            "INFERWATCH_LANGFUSE_PUBLIC_KEY": sim.public_key,
            "INFERWATCH_LANGFUSE_SECRET_KEY": sim.secret_key,
            "INFERWATCH_LANGFUSE_PROJECT": project,
            "INFERWATCH_LANGFUSE_SEGMENT_TAG_PREFIX": "tier:",
            "INFERWATCH_LANGFUSE_MAX_NEW_BUCKETS": "150",
            **{"INFERWATCH_LANGFUSE_" + k: v for k, v in timing.items()},
        },
        runners=[runner],
        scenarios=[
            scenario(
                "langfuse_error_rate_high", "LangfuseErrorRateHigh", "errors", "new generations end at level ERROR"
            ),
            scenario("langfuse_latency_high", "LangfuseLatencyHigh", "slow", "new generations take 30 s longer"),
            scenario(
                "langfuse_score_dropping",
                "LangfuseScoreDropping",
                "low_scores",
                "new NUMERIC scores fall to a fifth of their value",
            ),
        ],
    )
