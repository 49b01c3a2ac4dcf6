"""Langfuse analytics: exact cumulative usage per project, built from closed time buckets."""

from __future__ import annotations

from typing import Literal

import msgspec

from inferwatch.contracts.base import Snapshot

# Langfuse's score data types (``dataType``); rows of any other type are counted as bad rows.
ScoreDataType = Literal["NUMERIC", "BOOLEAN", "CATEGORICAL"]
# Where the ingester reads: the public API or the Langfuse database.
IngestMode = Literal["api", "db"]
# Langfuse's observation types (v2 had the first three; v3.70+ added the agent types); anything else is "other".
ObservationType = Literal[
    "SPAN", "GENERATION", "EVENT", "AGENT", "TOOL", "CHAIN", "RETRIEVER", "EVALUATOR", "EMBEDDING", "GUARDRAIL", "other"
]
# Langfuse's observation levels; anything else is "other".
ObservationLevel = Literal["DEBUG", "DEFAULT", "WARNING", "ERROR", "other"]


class UsageByKey(msgspec.Struct, frozen=True, kw_only=True):
    """Cumulative totals for one (model, user-segment) pair.

    Attributes:
        model: model name (``""`` when the observation had none).
        user: top-N user id, ``other``, or ``""`` when the trace had no user.
        segment: user segment (configured trace tag prefix or metadata key), ``""`` when none.
        traces_total: traces counted.
        observations_total: observations counted.
        error_observations_total: observations with level ERROR.
        input_tokens_total: input tokens.
        output_tokens_total: output tokens.
        total_tokens_total: total tokens.
        cost_usd_total: cost in USD.
    """

    model: str
    user: str = "other"
    segment: str = ""
    traces_total: float = 0.0
    observations_total: float = 0.0
    error_observations_total: float = 0.0
    input_tokens_total: float = 0.0
    output_tokens_total: float = 0.0
    total_tokens_total: float = 0.0
    cost_usd_total: float = 0.0


class LatencyQuantiles(msgspec.Struct, frozen=True, kw_only=True):
    """Latency quantiles over the last window, seconds (gauges, not counters)."""

    model: str
    trace_name: str = ""
    p50_s: float
    p90_s: float
    p99_s: float


SCORE_BOUNDS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
"""Upper bounds of the numeric score distribution (``+Inf`` implied): ``ScoreSummary.distribution`` keys are the
``repr`` of these, or ``+Inf``."""


class ScoreSummary(msgspec.Struct, frozen=True, kw_only=True):
    """Quality scores of one name over the last window.

    Attributes:
        name: score name.
        data_type: ``NUMERIC`` / ``BOOLEAN`` / ``CATEGORICAL``.
        count: scores counted.
        mean: numeric mean or boolean true-ratio.
        categories: categorical counts.
        nulls: null values skipped.
        sum: numeric sum (or boolean true count).
        distribution: numeric scores by upper bound (``le`` of ``SCORE_BOUNDS``; cumulative counts are made by the
            renderer).
    """

    name: str
    data_type: ScoreDataType
    count: float
    mean: float | None = None
    categories: dict[str, float] = {}
    nulls: float = 0.0
    sum: float = 0.0
    distribution: dict[str, float] = {}


class SessionLengths(msgspec.Struct, frozen=True, kw_only=True):
    """How long sessions are, over the re-check window (gauges): traces per session and first-to-last seconds.

    Measured on the window's sessions: all of them up to 256, above that an unbiased sample of 256 (by
    hash); a session that began before the window counts from its first trace inside it.

    Attributes:
        sessions: sessions measured.
        traces_p50: median traces per session (p90, p99 likewise).
        duration_p50_s: median seconds from a session's first trace start to its last trace end (p90, p99).
    """

    sessions: float
    traces_p50: float
    traces_p90: float
    traces_p99: float
    duration_p50_s: float
    duration_p90_s: float
    duration_p99_s: float


class LangfuseProjectSnapshot(Snapshot, frozen=True, kw_only=True, tag="langfuse.project"):
    """One Langfuse project's analytics. ``source`` is the project label.

    Attributes:
        up: the last poll succeeded.
        error: last error outcome.
        server_version: Langfuse version from ``/api/public/health``.
        mode: ``api`` or ``db``.
        watermark: end of the last closed, settled bucket included in the totals (Unix seconds).
        retention_days: project data retention, 0 when unlimited or unknown.
        usage: cumulative totals by (model, user).
        unique_users: distinct users in the re-check window (gauge; exact up to 2000, estimated above).
        unique_sessions: distinct sessions in the re-check window (gauge; same).
        latency: per model and trace name.
        scores: per score name.
        activity_by_hour: cumulative traces per UTC (weekday 0-6, hour 0-23), key ``"<wd>:<h>"``.
        bad_rows_total: unusable rows by reason (cumulative, e.g. ``score_unknown_type``).
        errors_total: failed cycles by reason (cumulative, this process).
        endpoints: read endpoints in use (after version detection and 404 fallbacks).
        observations_by_type_total: cumulative observations by type (SPAN, GENERATION, EVENT, AGENT, TOOL…).
        observations_by_level_total: cumulative observations by level (DEBUG, DEFAULT, WARNING, ERROR).
        traces_by_name_total: cumulative traces by trace name: the first ``max_trace_names`` names seen (sticky),
            every later name under ``other``.
        session_traces_total: cumulative traces that belong to a session.
        session_lengths: session length over the re-check window (None before any session).
    """

    up: bool
    error: str = ""
    server_version: str = ""
    mode: IngestMode = "api"
    watermark: float = 0.0
    retention_days: int = 0
    usage: list[UsageByKey] = []
    unique_users: float | None = None
    unique_sessions: float | None = None
    latency: list[LatencyQuantiles] = []
    scores: list[ScoreSummary] = []
    activity_by_hour: dict[str, float] = {}
    bad_rows_total: dict[str, float] = {}
    errors_total: dict[str, float] = {}
    endpoints: list[str] = []
    observations_by_type_total: dict[ObservationType, float] = {}
    observations_by_level_total: dict[ObservationLevel, float] = {}
    traces_by_name_total: dict[str, float] = {}
    session_traces_total: float = 0.0
    session_lengths: SessionLengths | None = None
