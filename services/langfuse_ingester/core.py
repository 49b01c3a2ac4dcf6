"""Pure Langfuse logic: version and endpoint plan, row normalisation, bucket contributions, the ledger.

No I/O here. The accounting model: time is cut into closed buckets ``[t, t+Δ)`` of the immutable event
time (trace ``timestamp``, observation ``startTime``, score ``timestamp``). A bucket is read once it has
settled (``now ≥ t + Δ + settle``); its *contribution* (counters, user/session sets, latency histograms)
replaces any earlier contribution of the same bucket. Exported counters are ``base + Σ recent``, where
``base`` holds the folded contributions of buckets older than the re-check horizon. The whole ledger is
one JSON document saved atomically, so a restart at any point neither double counts nor skips.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, get_args

from inferwatch.contracts.langfuse import SCORE_BOUNDS, ObservationLevel, ObservationType, ScoreDataType

SEP = "\x1f"
"""Separator inside flat counter keys (never appears in labels we keep)."""

LATENCY_BOUNDS_S: tuple[float, ...] = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    7.5,
    10.0,
    15.0,
    20.0,
    30.0,
    60.0,
    120.0,
    300.0,
)
"""Upper bounds of the fixed latency histogram the quantile gauges are computed from (seconds)."""

KNOWN_SCORE_TYPES: dict[str, ScoreDataType] = {data_type: data_type for data_type in get_args(ScoreDataType)}
OTHER = "other"
OBSERVATION_TYPES: dict[str, ObservationType] = {t: t for t in get_args(ObservationType) if t != OTHER}
OBSERVATION_LEVELS: dict[str, ObservationLevel] = {v: v for v in get_args(ObservationLevel) if v != OTHER}


def observation_type(raw: str) -> ObservationType:
    """An observation's type as a bounded label: Langfuse's types, anything else (a type added later) ``other``."""
    return OBSERVATION_TYPES.get(raw.upper(), "other")


def observation_level(raw: str) -> ObservationLevel:
    """An observation's level as a bounded label (``other`` for anything Langfuse does not define)."""
    return OBSERVATION_LEVELS.get(raw.upper(), "other")


# ---------------------------------------------------------------------------------------------------------
# Versions and the endpoint plan


@dataclass(frozen=True)
class EndpointPlan:
    """Which read endpoints to use against one server.

    Attributes:
        major: server major version (2, 3, 4; 0 when unknown).
        traces: ``/api/public/traces`` or ``""`` (v4 ``events_only``: traces come from root observations).
        observations: ``/api/public/observations`` (offset pages) or ``/api/public/v2/observations`` (cursor).
        scores: ``/api/public/scores`` (v2), ``/api/public/v2/scores`` (v3) or ``/api/public/v3/scores``.
    """

    major: int
    traces: str
    observations: str
    scores: str

    @property
    def cursor_observations(self) -> bool:
        """True when observations are cursor-paged (``/v2/observations``)."""
        return self.observations.endswith("/v2/observations")

    @property
    def cursor_scores(self) -> bool:
        """True when scores are cursor-paged (``/v3/scores``)."""
        return self.scores.endswith("/v3/scores")


TRACES = "/api/public/traces"
OBS_V1 = "/api/public/observations"
OBS_V2 = "/api/public/v2/observations"
SCORES_V1 = "/api/public/scores"
SCORES_V2 = "/api/public/v2/scores"
SCORES_V3 = "/api/public/v3/scores"


def parse_major(version: str) -> int:
    """Major version from ``/health``'s ``version`` (``"4.16.0"`` → 4; ``"v3.1"`` → 3; junk → 0)."""
    text = version.strip().lstrip("vV")
    head = text.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def initial_plan(major: int) -> EndpointPlan:
    """The preferred endpoints for a server major (v4 prefers the events-native endpoints)."""
    if major >= 4:
        return EndpointPlan(major, "", OBS_V2, SCORES_V3)
    if major == 3:
        return EndpointPlan(major, TRACES, OBS_V1, SCORES_V2)
    return EndpointPlan(major, TRACES, OBS_V1, SCORES_V1)


SCORE_FALLBACKS = {SCORES_V3: SCORES_V2, SCORES_V2: SCORES_V1}
OBS_FALLBACKS = {OBS_V2: OBS_V1, OBS_V1: OBS_V2}


def fallback(plan: EndpointPlan, missing: str) -> EndpointPlan | None:
    """The plan after ``missing`` answered 404 (the whole endpoint is absent), or None if nothing is left.

    v4 ``events_only`` answers 404 on ``/traces``, ``/observations`` and ``/v2/scores``; v3 by default on
    ``/v2/observations``; v2 on everything newer than ``/scores``.
    """
    if missing == plan.traces:
        return EndpointPlan(plan.major, "", OBS_V2, plan.scores if plan.scores == SCORES_V3 else SCORES_V3)
    if missing == plan.observations:
        alt = OBS_FALLBACKS[missing]
        if alt == OBS_V2 and plan.traces:
            return EndpointPlan(plan.major, "", OBS_V2, plan.scores)
        if alt == OBS_V1 and not plan.traces:
            return EndpointPlan(plan.major, TRACES, OBS_V1, plan.scores)
        return None
    if missing == plan.scores:
        alt_scores = SCORE_FALLBACKS.get(missing)
        return EndpointPlan(plan.major, plan.traces, plan.observations, alt_scores) if alt_scores else None
    return None


# ---------------------------------------------------------------------------------------------------------
# Numbers, times, usage


def number(value: Any) -> float | None:
    """A JSON number that may arrive as a string (64-bit ints on ClickHouse < 25.8, v2 obs prices); else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        try:
            as_float = float(value)
        except OverflowError:  # a JSON integer beyond float range (big ints are decoded exactly)
            return None
        return as_float if math.isfinite(as_float) else None
    if isinstance(value, str):
        try:
            parsed = float(value.strip())
        except ValueError:
            return None
        return parsed if math.isfinite(parsed) else None
    return None


def parse_time(value: Any) -> float | None:
    """ISO-8601 (``…Z`` or with offset) → Unix seconds; None when absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def iso(ts: float) -> str:
    """Unix seconds → ``2026-08-20T14:00:00.000Z`` (what every time filter accepts)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def reduce_details(details: Any) -> tuple[float, float, float | None]:
    """``usageDetails``/``costDetails`` → (input, output, total) as the server reduces them.

    ``input`` sums every key containing "input" (``input``, ``input_cached_tokens``…), ``output`` likewise;
    ``total`` is the ``total`` key itself (None when absent). Summing all keys would count ``total`` twice.
    """
    if not isinstance(details, Mapping):
        return 0.0, 0.0, None
    inp = out = 0.0
    total: float | None = None
    for key, raw in details.items():
        value = number(raw)
        if value is None:
            continue
        if key == "total":
            total = value
        elif "input" in key:
            inp += value
        elif "output" in key:
            out += value
    return inp, out, total


# ---------------------------------------------------------------------------------------------------------
# Normalised rows


@dataclass(frozen=True)
class TraceRow:
    """A trace reduced to what the analytics need."""

    id: str
    timestamp: float
    name: str
    user_id: str
    session_id: str
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    latency_s: float | None = None


@dataclass(frozen=True)
class ObservationRow:
    """An observation reduced to what the analytics need (tokens, cost, latency in seconds)."""

    id: str
    trace_id: str
    start_time: float
    type: str
    model: str
    level: str
    input_tokens: float
    output_tokens: float
    total_tokens: float
    cost_usd: float
    latency_s: float | None
    is_root: bool
    user_id: str = ""
    session_id: str = ""
    trace_name: str = ""
    name: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScoreRow:
    """A score: ``value`` is a float (numeric, boolean 0/1), ``category`` a string, both None when null."""

    id: str
    timestamp: float
    name: str
    data_type: str
    value: float | None
    category: str | None


class BadRowError(ValueError):
    """A row that cannot be used; ``reason`` is a short bounded label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def parse_trace(item: Any) -> TraceRow:
    """One ``/traces`` item. ``latency: -1`` (the ``fields`` sentinel) becomes None."""
    if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
        raise BadRowError("trace_without_id")
    ts = parse_time(item.get("timestamp"))
    if ts is None:
        raise BadRowError("trace_bad_timestamp")
    latency = number(item.get("latency"))
    tags = item.get("tags")
    metadata = item.get("metadata")
    return TraceRow(
        id=item["id"],
        timestamp=ts,
        name=_str(item.get("name")),
        user_id=_str(item.get("userId")),
        session_id=_str(item.get("sessionId")),
        tags=tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else (),
        metadata=metadata if isinstance(metadata, Mapping) else {},
        latency_s=latency if latency is not None and latency >= 0 else None,
    )


def parse_observation(item: Any) -> ObservationRow:
    """One observation from ``/observations`` (v1) or ``/v2/observations``.

    Tokens come from ``usageDetails`` (reduced without double counting ``total``), falling back to the v1
    ``usage`` object; cost from ``totalCost``/``calculatedTotalCost``, falling back to ``costDetails``. A
    ``-1`` cost or latency is a sentinel for "not computed" and counts as absent. Latency is seconds.
    """
    if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
        raise BadRowError("observation_without_id")
    start = parse_time(item.get("startTime"))
    if start is None:
        raise BadRowError("observation_bad_start_time")
    inp, out, total = reduce_details(item.get("usageDetails"))
    if not inp and not out and total is None and isinstance(item.get("usage"), Mapping):
        usage = item["usage"]
        inp, out = number(usage.get("input")) or 0.0, number(usage.get("output")) or 0.0
        total = number(usage.get("total"))
    if total is None:
        total = inp + out
    cost: float | None = None
    for key in ("totalCost", "calculatedTotalCost"):
        value = number(item.get(key))
        if value is not None and value >= 0:
            cost = value
            break
    if cost is None:
        c_in, c_out, c_total = reduce_details(item.get("costDetails"))
        cost = c_total if c_total is not None else c_in + c_out
    latency = number(item.get("latency"))
    if latency is None:
        end = parse_time(item.get("endTime"))
        latency = end - start if end is not None else None
    model = item.get("model") if isinstance(item.get("model"), str) else item.get("providedModelName")
    parent = item.get("parentObservationId")
    is_root = bool(item.get("isRootObservation")) if "isRootObservation" in item else not parent
    return ObservationRow(
        id=item["id"],
        trace_id=_str(item.get("traceId")),
        start_time=start,
        type=_str(item.get("type")),
        model=_str(model),
        level=_str(item.get("level")) or "DEFAULT",
        input_tokens=inp,
        output_tokens=out,
        total_tokens=total,
        cost_usd=cost,
        latency_s=latency if latency is not None and latency >= 0 else None,
        is_root=is_root,
        user_id=_str(item.get("userId")),
        session_id=_str(item.get("sessionId")),
        trace_name=_str(item.get("traceName")),
        name=_str(item.get("name")),
        tags=tuple(t for t in item["tags"] if isinstance(t, str)) if isinstance(item.get("tags"), list) else (),
    )


def parse_score(item: Any) -> ScoreRow:
    """One score from ``/scores`` (v2 server), ``/v2/scores`` or ``/v3/scores`` (polymorphic ``value``).

    Raises BadRowError("score_unknown_type") for data types other than NUMERIC/BOOLEAN/CATEGORICAL (TEXT,
    CORRECTION, anything new): the caller counts them and moves on.
    """
    if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
        raise BadRowError("score_without_id")
    ts = parse_time(item.get("timestamp"))
    if ts is None:
        raise BadRowError("score_bad_timestamp")
    data_type = _str(item.get("dataType")).upper()
    if data_type not in KNOWN_SCORE_TYPES:
        raise BadRowError("score_unknown_type")
    raw = item.get("value")
    string_value = item.get("stringValue")
    value: float | None = None
    category: str | None = None
    if data_type == "NUMERIC":
        value = number(raw)
    elif data_type == "BOOLEAN":
        if isinstance(raw, bool):
            value = 1.0 if raw else 0.0
        elif number(raw) is not None:
            value = 1.0 if number(raw) else 0.0
        elif isinstance(string_value, str) and string_value.lower() in ("true", "false"):
            value = 1.0 if string_value.lower() == "true" else 0.0
    else:
        if isinstance(raw, str):
            category = raw
        elif isinstance(string_value, str):
            category = string_value
    return ScoreRow(
        id=item["id"], timestamp=ts, name=_str(item.get("name")), data_type=data_type, value=value, category=category
    )


# ---------------------------------------------------------------------------------------------------------
# Contributions


def key(*parts: str) -> str:
    """A flat counter key."""
    return SEP.join(parts)


def split_key(flat: str) -> list[str]:
    """Inverse of :func:`key`."""
    return flat.split(SEP)


def _histogram_index(value: float, bounds: tuple[float, ...]) -> int:
    return bisect.bisect_left(bounds, value)


def segment_of(trace: TraceRow | None, segment_tag_prefix: str, segment_metadata_key: str) -> str:
    """The user segment of a trace: the first tag starting with ``prefix`` (prefix stripped) or a metadata value."""
    if trace is None:
        return ""
    if segment_tag_prefix:
        for tag in trace.tags:
            if tag.startswith(segment_tag_prefix):
                return tag[len(segment_tag_prefix) :][:64]
    if segment_metadata_key:
        value = trace.metadata.get(segment_metadata_key)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)[:64]
    return ""


def _add(counters: dict[str, float], flat: str, value: float) -> None:
    counters[flat] = counters.get(flat, 0.0) + value


@dataclass
class BucketRows:
    """The rows a reader returns for one bucket: what `bucket_contribution` counts."""

    traces: list[TraceRow] = field(default_factory=list)
    observations: list[ObservationRow] = field(default_factory=list)
    scores: list[ScoreRow] = field(default_factory=list)
    context_traces: dict[str, TraceRow] = field(default_factory=dict)
    """Traces read before the bucket, only to attribute its observations to users."""
    bad_rows: dict[str, float] = field(default_factory=dict)
    """Rows dropped while reading, by reason."""
    traces_from_roots: bool = False
    """v4 ``events_only``: the traces are the root observations."""


@dataclass(frozen=True)
class Segmentation:
    """Where a trace's user segment comes from: a tag prefix, else a metadata key (see `segment_of`)."""

    tag_prefix: str = ""
    metadata_key: str = ""

    def of(self, trace: TraceRow | None) -> str:
        """The segment of ``trace`` ("" when none)."""
        return segment_of(trace, self.tag_prefix, self.metadata_key)


class _Bucket:
    """The distinct rows of one bucket ``[start, end)`` and how its observations map to users."""

    def __init__(self, start: float, end: float, rows: BucketRows, segmentation: Segmentation) -> None:
        self.traces = {t.id: t for t in rows.traces if start <= t.timestamp < end}
        self.observations = {o.trace_id + SEP + o.id: o for o in rows.observations if start <= o.start_time < end}
        self.scores = {s.id: s for s in rows.scores if start <= s.timestamp < end}
        self.lookup: dict[str, TraceRow] = {**rows.context_traces, **self.traces}
        self.segmentation = segmentation
        if rows.traces_from_roots:
            for o in self.observations.values():
                if o.is_root:
                    root = TraceRow(
                        id=o.trace_id,
                        timestamp=o.start_time,
                        name=o.trace_name or o.name,
                        user_id=o.user_id,
                        session_id=o.session_id,
                        tags=o.tags,
                        latency_s=o.latency_s,
                    )
                    self.traces[o.trace_id] = root
                    self.lookup.setdefault(o.trace_id, root)
        # user, trace name and segment of each observation, once: three passes read them
        self.attributions = {k: self._attribute(o) for k, o in self.observations.items()}

    def _attribute(self, o: ObservationRow) -> tuple[str, str, str]:
        """User, trace name and segment of an observation, from its own fields or its trace."""
        t = self.lookup.get(o.trace_id)
        user = o.user_id or (t.user_id if t else "")
        name = o.trace_name or (t.name if t else "")
        return user, name, self.segmentation.of(t)

    def track_trace_names(self, tracked_names: list[str], max_names: int) -> set[str]:
        """Extend the sticky list of trace names kept by name with this bucket's (most traces first) while it has
        room, and return it as a set; every other name is ``other``."""
        weight: dict[str, float] = {}
        for t in self.traces.values():
            weight[t.name] = weight.get(t.name, 0.0) + 1.0
        return _extend_sticky(tracked_names, weight, max_names)

    def track_users(self, tracked_users: list[str], top_n_users: int) -> set[str]:
        """Extend the sticky top-N list with this bucket's users and return it as a set.

        Ranked by tokens, then by trace count, then by id (deterministic).
        """
        weight: dict[str, float] = {}
        for t in self.traces.values():
            if t.user_id:
                weight[t.user_id] = weight.get(t.user_id, 0.0) + 1e-9
        for k, o in self.observations.items():
            user = self.attributions[k][0]
            if user:
                weight[user] = weight.get(user, 0.0) + o.total_tokens
        return _extend_sticky(tracked_users, weight, top_n_users)


def _extend_sticky(tracked: list[str], weight: Mapping[str, float], cap: int) -> set[str]:
    """Append the heaviest of ``weight``'s names (ties by name) to the sticky list ``tracked`` while it holds
    fewer than ``cap``; names already in it stay whatever their weight. Returns the list as a set."""
    for name in sorted(weight, key=lambda n: (-weight[n], n)):
        if len(tracked) >= cap:
            break
        if name not in tracked:
            tracked.append(name)
    return set(tracked)


def _user_label(user: str, tracked: set[str]) -> str:
    if not user:
        return ""
    return user if user in tracked else OTHER


def _trace_name_label(name: str, tracked: set[str]) -> str:
    return name if name in tracked else OTHER


def _usage_counters(bucket: _Bucket, tracked: set[str], names: set[str], counters: dict[str, float]) -> None:
    for t in bucket.traces.values():
        seg = bucket.segmentation.of(t)
        _add(counters, key("usage", "", _user_label(t.user_id, tracked), seg, "traces"), 1.0)
        moment = datetime.fromtimestamp(t.timestamp, UTC)
        _add(counters, key("activity", str(moment.weekday()), str(moment.hour)), 1.0)
        _add(counters, key("trace_name", _trace_name_label(t.name, names)), 1.0)
        if t.session_id:
            _add(counters, key("session_traces"), 1.0)
    for k, o in bucket.observations.items():
        user, _, seg = bucket.attributions[k]
        prefix = ("usage", o.model, _user_label(user, tracked), seg)
        _add(counters, key("obs_type", observation_type(o.type)), 1.0)
        _add(counters, key("obs_level", observation_level(o.level)), 1.0)
        _add(counters, key(*prefix, "observations"), 1.0)
        if o.level == "ERROR":
            _add(counters, key(*prefix, "errors"), 1.0)
        _add(counters, key(*prefix, "input_tokens"), o.input_tokens)
        _add(counters, key(*prefix, "output_tokens"), o.output_tokens)
        _add(counters, key(*prefix, "total_tokens"), o.total_tokens)
        _add(counters, key(*prefix, "cost_usd"), o.cost_usd)


def _score_counters(scores: Iterable[ScoreRow], counters: dict[str, float]) -> None:
    for s in scores:
        base = ("score", s.name, s.data_type)
        if s.data_type == "CATEGORICAL":
            if s.category is None:
                _add(counters, key(*base, "nulls"), 1.0)
                continue
            _add(counters, key(*base, "count"), 1.0)
            _add(counters, key("score_cat", s.name, s.category[:64]), 1.0)
            continue
        if s.value is None:
            _add(counters, key(*base, "nulls"), 1.0)
            continue
        _add(counters, key(*base, "count"), 1.0)
        _add(counters, key(*base, "sum"), s.value)
        if s.data_type == "NUMERIC":
            index = _histogram_index(s.value, SCORE_BOUNDS)
            le = "+Inf" if index >= len(SCORE_BOUNDS) else repr(SCORE_BOUNDS[index])
            _add(counters, key("score_bucket", s.name, le), 1.0)


def _latency_histograms(bucket: _Bucket, names: set[str]) -> dict[str, list[float]]:
    """Latency histograms keyed by ``model|trace name`` (``model`` empty for whole traces; names beyond the kept
    ones are ``other``); the sum in the last slot."""
    latency: dict[str, list[float]] = {}

    def observe(model: str, trace_name: str, value: float | None) -> None:
        if value is None:
            return
        flat = key(model, _trace_name_label(trace_name, names))
        counts = latency.setdefault(flat, [0.0] * (len(LATENCY_BOUNDS_S) + 2))
        counts[_histogram_index(value, LATENCY_BOUNDS_S)] += 1
        counts[-1] += value

    for k, o in bucket.observations.items():
        if o.model:
            observe(o.model, bucket.attributions[k][1], o.latency_s)
    for t in bucket.traces.values():
        observe("", t.name, t.latency_s)
    return latency


MAX_TRACE_NAMES = 100
"""Trace names kept by name by default (``INFERWATCH_LANGFUSE_MAX_TRACE_NAMES``); later names count as ``other``."""

SESSION_SAMPLE = 256
"""Session spans kept per bucket: the smallest this many session hashes (the ledger is one NATS key-value put,
so it stays far below the 1 MB message limit whatever the traffic)."""


def _session_spans(traces: Iterable[TraceRow]) -> dict[str, list[float]]:
    """Per session (by the hash the distinct-session sketch uses): [first trace start, last trace end, traces].

    Only the smallest ``SESSION_SAMPLE`` hashes are kept: bounded, no raw ids. A hash among the smallest
    ``SESSION_SAMPLE`` of the whole window is among the smallest of every bucket it occurs in, so the window's
    sample is an unbiased sample of its sessions with every span complete.
    """
    spans: dict[int, list[float]] = {}
    for t in traces:
        if not t.session_id:
            continue
        end = t.timestamp + (t.latency_s or 0.0)
        span = spans.setdefault(_hash32(t.session_id), [t.timestamp, end, 0.0])
        span[0], span[1], span[2] = min(span[0], t.timestamp), max(span[1], end), span[2] + 1.0
    return {str(h): [round(v, 3) for v in spans[h]] for h in sorted(spans)[:SESSION_SAMPLE]}


def bucket_contribution(
    bucket_start: float,
    bucket_end: float,
    rows: BucketRows,
    *,
    tracked_users: list[str],
    top_n_users: int,
    segmentation: Segmentation = Segmentation(),
    tracked_trace_names: list[str] | None = None,
    max_trace_names: int = MAX_TRACE_NAMES,
) -> dict[str, Any]:
    """One bucket's contribution (JSON-able). Rows outside ``[start, end)`` are ignored; duplicates by id too.

    ``tracked_users`` is the ledger's sticky top-N list: users of this bucket join it (largest token use
    first) while it has room; everyone else is ``other``. The list is extended in place, as is
    ``tracked_trace_names`` (the trace names kept by name, at most ``max_trace_names``; the rest ``other``).

    Counter keys: ``usage|model|user|segment|field``, ``score|name|type|field``, ``score_cat|name|category``,
    ``score_bucket|name|le``, ``activity|weekday|hour``, ``bad|reason``, ``obs_type|type``, ``obs_level|level``,
    ``trace_name|name``, ``session_traces``.
    """
    bucket = _Bucket(bucket_start, bucket_end, rows, segmentation)
    tracked = bucket.track_users(tracked_users, top_n_users)
    names = bucket.track_trace_names([] if tracked_trace_names is None else tracked_trace_names, max_trace_names)
    counters: dict[str, float] = {}
    _usage_counters(bucket, tracked, names, counters)
    _score_counters(bucket.scores.values(), counters)
    for reason, count in rows.bad_rows.items():
        _add(counters, key("bad", reason), count)
    traces, observations = bucket.traces.values(), bucket.observations.values()
    users = distinct_sketch({t.user_id for t in traces if t.user_id} | {o.user_id for o in observations if o.user_id})
    sessions = distinct_sketch(
        {t.session_id for t in traces if t.session_id} | {o.session_id for o in observations if o.session_id}
    )
    return {
        "start": bucket_start,
        "counters": counters,
        "users": users,
        "sessions": sessions,
        "session_spans": _session_spans(traces),
        "latency": _latency_histograms(bucket, names),
    }


# ---------------------------------------------------------------------------------------------------------
# The ledger


@dataclass
class Ledger:
    """Per-project accounting state (saved as one JSON document).

    Attributes:
        watermark: end of the last finalised bucket (Unix seconds; 0 before the first).
        base: folded counters of buckets older than the re-check horizon.
        recent: bucket start (as string) → contribution, for buckets still re-checked.
        tracked_users: sticky top-N users.
        tracked_trace_names: sticky trace names kept by name (absent from ledgers saved before it: empty).
    """

    watermark: float = 0.0
    base: dict[str, float] = field(default_factory=dict)
    recent: dict[str, dict[str, Any]] = field(default_factory=dict)
    tracked_users: list[str] = field(default_factory=list)
    tracked_trace_names: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "v": 1,
            "watermark": self.watermark,
            "base": self.base,
            "recent": self.recent,
            "tracked_users": self.tracked_users,
            "tracked_trace_names": self.tracked_trace_names,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Ledger:
        """Inverse of :meth:`to_json`; raises ValueError on a document of another version."""
        if doc.get("v") != 1:
            raise ValueError("unknown ledger version")
        return cls(
            watermark=float(doc.get("watermark", 0.0)),
            base=dict(doc.get("base", {})),
            recent=dict(doc.get("recent", {})),
            tracked_users=list(doc.get("tracked_users", [])),
            tracked_trace_names=list(doc.get("tracked_trace_names", [])),
        )

    def put(self, contribution: dict[str, Any]) -> None:
        """Set (not add) one bucket's contribution: re-reading a bucket replaces what it gave before."""
        self.recent[_bucket_key(contribution["start"])] = contribution

    def fold_before(self, horizon: float) -> None:
        """Move buckets that start before ``horizon`` into ``base``; they are never re-read again."""
        for bucket in sorted(self.recent, key=float):
            if float(bucket) >= horizon:
                continue
            for flat, value in self.recent.pop(bucket)["counters"].items():
                _add(self.base, flat, value)

    def totals(self) -> dict[str, float]:
        """Cumulative counters: base plus every recent bucket."""
        out = dict(self.base)
        for contribution in self.recent.values():
            for flat, value in contribution["counters"].items():
                _add(out, flat, value)
        return out

    def window_distinct(self) -> tuple[float, float]:
        """Distinct users and sessions over the recent window (exact up to the sketch size, then estimated)."""
        users: set[int] = set()
        sessions: set[int] = set()
        for contribution in self.recent.values():
            users.update(contribution.get("users", ()))
            sessions.update(contribution.get("sessions", ()))
        return sketch_count(users), sketch_count(sessions)

    def window_sessions(self) -> list[list[float]]:
        """Sessions over the recent window as [first start, last end, traces], merged across buckets (the
        ``SESSION_SAMPLE`` smallest session hashes: every session below that many, an unbiased sample above)."""
        merged: dict[str, list[float]] = {}
        for contribution in self.recent.values():
            for session, (first, last, traces) in contribution.get("session_spans", {}).items():
                span = merged.get(session)
                if span is None:
                    merged[session] = [first, last, traces]
                else:
                    span[0], span[1], span[2] = min(span[0], first), max(span[1], last), span[2] + traces
        return [merged[h] for h in sorted(merged, key=int)[:SESSION_SAMPLE]]

    def window_latency(self) -> dict[str, list[float]]:
        """Merged latency histograms over the recent window, by ``model|trace_name``."""
        merged: dict[str, list[float]] = {}
        for contribution in self.recent.values():
            for flat, counts in contribution.get("latency", {}).items():
                into = merged.setdefault(flat, [0.0] * len(counts))
                for i, c in enumerate(counts):
                    into[i] += c
        return merged


SKETCH_SIZE = 2000
"""Distinct-value sketches keep the smallest this many 32-bit hashes (exact below it, KMV estimate above)."""


def _hash32(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=4).digest(), "big")


def distinct_sketch(values: Iterable[str], size: int = SKETCH_SIZE) -> list[int]:
    """The smallest ``size`` 32-bit hashes of the values: bounded in the ledger, and no raw ids stored."""
    return sorted({_hash32(v) for v in values})[:size]


def sketch_count(hashes: set[int], size: int = SKETCH_SIZE) -> float:
    """Distinct count of a union of sketches: exact when it holds fewer than ``size`` hashes, else the
    k-minimum-values estimate ``(k - 1) / (h_k / 2^32)`` (each bucket keeps its smallest ``size``, so the
    union's smallest ``size`` are all present)."""
    if len(hashes) < size:
        return float(len(hashes))
    kth = sorted(hashes)[size - 1]
    return (size - 1) / ((kth + 1) / 2**32)


def _bucket_key(start: float) -> str:
    return str(int(start))


@dataclass(frozen=True)
class CyclePlan:
    """Which buckets one cycle reads: ``new`` ones (advance the watermark) and ``recheck`` ones."""

    new: list[float]
    recheck: list[float]
    horizon: float


def plan_cycle(
    ledger: Ledger,
    now: float,
    *,
    bucket_s: float,
    settle_s: float,
    recheck_s: float,
    backfill_s: float,
    retention_days: int,
    max_new: int,
) -> CyclePlan:
    """Buckets to read now.

    Closed buckets end at or before ``now - settle``. New buckets start at the watermark (or ``backfill``
    before the closed edge on the first run), never earlier than the retention limit (a bucket partly
    deleted by retention would show as a drop). Re-checked buckets are the recent ones still inside
    ``recheck_s`` of the closed edge and after the retention limit.
    """
    closed_edge = math.floor((now - settle_s) / bucket_s) * bucket_s
    earliest = -math.inf
    if retention_days > 0:
        earliest = math.ceil((now - (retention_days - 1) * 86400.0) / bucket_s) * bucket_s
    start = ledger.watermark or closed_edge - backfill_s
    start = max(start, earliest)
    new: list[float] = []
    t = start
    while t + bucket_s <= closed_edge and len(new) < max_new:
        new.append(t)
        t += bucket_s
    horizon = closed_edge - recheck_s
    recheck = sorted(float(b) for b in ledger.recent if float(b) >= max(horizon, earliest) and float(b) < start)
    return CyclePlan(new=new, recheck=recheck, horizon=horizon)


# ---------------------------------------------------------------------------------------------------------
# Window statistics


def histogram_quantile(counts: list[float], q: float, bounds: tuple[float, ...] = LATENCY_BOUNDS_S) -> float | None:
    """Quantile from fixed-bound counts (last slot is the sum, the one before it ``+Inf``), linear in a bucket."""
    buckets = counts[: len(bounds) + 1]
    total = sum(buckets)
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    for i, c in enumerate(buckets):
        if c and seen + c >= rank:
            lower = bounds[i - 1] if i > 0 else 0.0
            if i >= len(bounds):
                return bounds[-1]
            return lower + (bounds[i] - lower) * ((rank - seen) / c)
        seen += c
    return bounds[-1]


# ---------------------------------------------------------------------------------------------------------
# Snapshot parts


@dataclass(frozen=True)
class SnapshotParts:
    """What a snapshot carries, computed from a ledger (plain values, mapped to contracts by app.py)."""

    usage: dict[tuple[str, str, str], dict[str, float]]
    scores: dict[tuple[str, str], dict[str, Any]]
    latency: dict[tuple[str, str], tuple[float, float, float]]
    activity: dict[str, float]
    bad_rows: dict[str, float]
    unique_users: float
    unique_sessions: float
    observation_types: dict[ObservationType, float] = field(default_factory=dict)
    observation_levels: dict[ObservationLevel, float] = field(default_factory=dict)
    trace_names: dict[str, float] = field(default_factory=dict)
    session_traces: float = 0.0
    session_lengths: tuple[float, tuple[float, float, float], tuple[float, float, float]] | None = None
    """(sessions, traces per session p50/p90/p99, duration p50/p90/p99 seconds) over the window."""


QUANTILES = (0.5, 0.9, 0.99)
"""The quantiles of every window gauge (the contract's ``p50``/``p90``/``p99`` fields)."""


def exact_quantiles(values: list[float], qs: tuple[float, ...] = QUANTILES) -> tuple[float, ...]:
    """Nearest-rank quantiles of ``values`` (not empty)."""
    ordered = sorted(values)
    return tuple(ordered[max(0, math.ceil(q * len(ordered)) - 1)] for q in qs)


def _session_lengths(
    spans: list[list[float]],
) -> tuple[float, tuple[float, float, float], tuple[float, float, float]] | None:
    if not spans:
        return None
    traces = exact_quantiles([s[2] for s in spans])
    durations = exact_quantiles([s[1] - s[0] for s in spans])
    return float(len(spans)), (traces[0], traces[1], traces[2]), (durations[0], durations[1], durations[2])


def snapshot_parts(ledger: Ledger) -> SnapshotParts:
    """Cumulative counters and window gauges from the ledger."""
    usage: dict[tuple[str, str, str], dict[str, float]] = {}
    scores: dict[tuple[str, str], dict[str, Any]] = {}
    activity: dict[str, float] = {}
    bad: dict[str, float] = {}
    categories: dict[str, dict[str, float]] = {}
    distribution: dict[str, dict[str, float]] = {}
    kinds: dict[str, dict[str, float]] = {"obs_type": {}, "obs_level": {}, "trace_name": {}}
    totals = ledger.totals()
    for flat, value in totals.items():
        parts = split_key(flat)
        kind = parts[0]
        if kind in kinds and len(parts) == 2:
            kinds[kind][parts[1]] = value
        elif kind == "usage" and len(parts) == 5:
            usage.setdefault((parts[1], parts[2], parts[3]), {})[parts[4]] = value
        elif kind == "score" and len(parts) == 4:
            scores.setdefault((parts[1], parts[2]), {})[parts[3]] = value
        elif kind == "score_cat" and len(parts) == 3:
            categories.setdefault(parts[1], {})[parts[2]] = value
        elif kind == "score_bucket" and len(parts) == 3:
            distribution.setdefault(parts[1], {})[parts[2]] = value
        elif kind == "activity" and len(parts) == 3:
            activity[f"{parts[1]}:{parts[2]}"] = value
        elif kind == "bad" and len(parts) == 2:
            bad[parts[1]] = value
    for (name, data_type), fields in scores.items():
        if data_type == "CATEGORICAL":
            fields["categories"] = categories.get(name, {})
        if data_type == "NUMERIC":
            fields["distribution"] = distribution.get(name, {})
    latency: dict[tuple[str, str], tuple[float, float, float]] = {}
    for flat, counts in ledger.window_latency().items():
        model, trace_name = split_key(flat)
        qs = [histogram_quantile(counts, q) for q in QUANTILES]
        if all(q is not None for q in qs):
            latency[(model, trace_name)] = (qs[0], qs[1], qs[2])  # type: ignore[assignment]
    users, sessions = ledger.window_distinct()
    return SnapshotParts(
        usage=usage,
        scores=scores,
        latency=latency,
        activity=activity,
        bad_rows=bad,
        unique_users=users,
        unique_sessions=sessions,
        observation_types={observation_type(t): v for t, v in kinds["obs_type"].items()},
        observation_levels={observation_level(level): v for level, v in kinds["obs_level"].items()},
        trace_names=kinds["trace_name"],
        session_traces=totals.get(key("session_traces"), 0.0),
        session_lengths=_session_lengths(ledger.window_sessions()),
    )
