"""Langfuse project snapshots → ``inferwatch_langfuse_*``: exact cumulative usage, scores, latency, activity."""

from __future__ import annotations

from typing import get_args

from inferwatch.contracts.base import Histogram
from inferwatch.contracts.langfuse import SCORE_BOUNDS, LangfuseProjectSnapshot, ObservationLevel, ObservationType
from inferwatch.services.aggregator.render import Family, SeriesWriter, label_block, renderer_for

P = "inferwatch_langfuse_"
UP = Family(P + "up", "gauge", "1 when the last ingest cycle of the Langfuse project succeeded.")
INFO = Family(P + "info", "gauge", "Langfuse project metadata (server version, mode, endpoints); always 1.")
ERRORS = Family(P + "ingest_errors", "counter", "Failed ingest cycles, by reason.")
BAD_ROWS = Family(P + "bad_rows", "counter", "Rows that could not be used (unknown score type, no id…), by reason.")
WATERMARK = Family(
    P + "watermark_timestamp_seconds", "gauge", "End of the last settled bucket included in the totals (Unix seconds)."
)
RETENTION = Family(P + "retention_days", "gauge", "Project data retention in days (0: unlimited or unknown).")
TRACES = Family(P + "traces", "counter", "Traces, by user (top-N + other) and segment.")
OBSERVATIONS = Family(P + "observations", "counter", "Observations, by model, user and segment.")
ERROR_OBS = Family(P + "error_observations", "counter", "Observations with level ERROR, by model, user, segment.")
TOKENS = Family(P + "tokens", "counter", "Tokens by direction (input, output, total), model, user and segment.")
COST = Family(P + "cost_usd", "counter", "Cost in USD, by model, user and segment.")
USERS = Family(P + "window_unique_users", "gauge", "Distinct users in the re-check window.")
SESSIONS = Family(P + "window_unique_sessions", "gauge", "Distinct sessions in the re-check window.")
LATENCY = Family(
    P + "latency_seconds",
    "gauge",
    'Latency quantiles over the re-check window, by model and trace name (model "": whole trace).',
)
SCORES = Family(P + "scores", "counter", "Scores counted (nulls excluded), by name and data type.")
SCORE_NULLS = Family(P + "score_nulls", "counter", "Null scores skipped, by name and data type.")
SCORE_SUM = Family(P + "score_value_sum", "counter", "Sum of numeric score values (boolean: true count).")
SCORE_MEAN = Family(P + "score_mean", "gauge", "Mean numeric score, or the true ratio of a boolean score.")
SCORE_CATEGORIES = Family(P + "score_categories", "counter", "Categorical scores by value.")
SCORE_DIST = Family(P + "score_value", "histogram", "Distribution of numeric score values.")
ACTIVITY = Family(P + "activity_traces", "counter", "Traces by UTC weekday (0 = Monday) and hour, for the heatmap.")
OBS_BY_TYPE = Family(
    P + "observations_by_type", "counter", f"Observations by type ({', '.join(get_args(ObservationType))})."
)
OBS_BY_LEVEL = Family(
    P + "observations_by_level", "counter", f"Observations by level ({', '.join(get_args(ObservationLevel))})."
)
TRACES_BY_NAME = Family(
    P + "traces_by_name", "counter", "Traces by trace name (the first names seen, up to the cap; later ones: other)."
)
SESSION_TRACES = Family(P + "session_traces", "counter", "Traces that belong to a session.")
SESSION_LENGTH_TRACES = Family(
    P + "window_session_traces", "gauge", "Traces per session over the re-check window, by quantile."
)
SESSION_LENGTH_SECONDS = Family(
    P + "window_session_duration_seconds",
    "gauge",
    "Session duration (first trace start to last trace end) over the re-check window, by quantile.",
    "seconds",
)


def render_langfuse(event: LangfuseProjectSnapshot, w: SeriesWriter) -> None:
    """One Langfuse project."""
    project = event.source
    base = label_block({"project": project})
    w.gauge(UP, base, 1.0 if event.up else 0.0)
    w.gauge(
        INFO,
        label_block(
            {
                "project": project,
                "version": event.server_version,
                "mode": event.mode,
                "endpoints": ",".join(event.endpoints),
            }
        ),
        1.0,
    )
    for reason, count in event.errors_total.items():
        w.counter(ERRORS, label_block({"project": project, "reason": reason}), count)
    for reason, count in event.bad_rows_total.items():
        w.counter(BAD_ROWS, label_block({"project": project, "reason": reason}), count)
    w.gauge(WATERMARK, base, event.watermark or None)
    w.gauge(RETENTION, base, float(event.retention_days))
    w.gauge(USERS, base, event.unique_users)
    w.gauge(SESSIONS, base, event.unique_sessions)
    for u in event.usage:
        who = {"project": project, "user": u.user, "segment": u.segment}
        if u.traces_total:
            w.counter(TRACES, label_block(who), u.traces_total)
        if not u.observations_total:
            continue
        labels = {**who, "model": u.model}
        w.counter(OBSERVATIONS, label_block(labels), u.observations_total)
        w.counter(ERROR_OBS, label_block(labels), u.error_observations_total)
        for direction, value in (
            ("input", u.input_tokens_total),
            ("output", u.output_tokens_total),
            ("total", u.total_tokens_total),
        ):
            w.counter(TOKENS, label_block({**labels, "direction": direction}), value)
        w.counter(COST, label_block(labels), u.cost_usd_total)
    for q in event.latency:
        for quantile, value in (("0.5", q.p50_s), ("0.9", q.p90_s), ("0.99", q.p99_s)):
            w.gauge(
                LATENCY,
                label_block({"project": project, "model": q.model, "trace_name": q.trace_name, "quantile": quantile}),
                value,
            )
    for s in event.scores:
        labels = {"project": project, "name": s.name, "data_type": s.data_type}
        w.counter(SCORES, label_block(labels), s.count)
        w.counter(SCORE_NULLS, label_block(labels), s.nulls)
        if s.data_type != "CATEGORICAL":
            w.counter(SCORE_SUM, label_block(labels), s.sum)
            w.gauge(SCORE_MEAN, label_block(labels), s.mean)
        for category, count in s.categories.items():
            w.counter(SCORE_CATEGORIES, label_block({**labels, "value": category}), count)
        if s.data_type == "NUMERIC" and s.distribution:
            _score_histogram(w, labels, s.distribution, s.count, s.sum)
    _render_kinds(event, w)
    for slot, count in event.activity_by_hour.items():
        weekday, _, hour = slot.partition(":")
        w.counter(ACTIVITY, label_block({"project": project, "weekday": weekday, "hour": hour}), count)


def _render_kinds(event: LangfuseProjectSnapshot, w: SeriesWriter) -> None:
    """Observations by type and level, traces by name, sessions."""
    project = event.source
    for obs_type, count in sorted(event.observations_by_type_total.items()):
        w.counter(OBS_BY_TYPE, label_block({"project": project, "type": obs_type}), count)
    for level, count in sorted(event.observations_by_level_total.items()):
        w.counter(OBS_BY_LEVEL, label_block({"project": project, "level": level}), count)
    for name, count in sorted(event.traces_by_name_total.items()):
        w.counter(TRACES_BY_NAME, label_block({"project": project, "trace_name": name}), count)
    w.counter(SESSION_TRACES, label_block({"project": project}), event.session_traces_total)
    lengths = event.session_lengths
    if lengths is not None:
        for quantile, traces, seconds in (
            ("0.5", lengths.traces_p50, lengths.duration_p50_s),
            ("0.9", lengths.traces_p90, lengths.duration_p90_s),
            ("0.99", lengths.traces_p99, lengths.duration_p99_s),
        ):
            labels = label_block({"project": project, "quantile": quantile})
            w.gauge(SESSION_LENGTH_TRACES, labels, traces)
            w.gauge(SESSION_LENGTH_SECONDS, labels, seconds)


def _score_histogram(
    w: SeriesWriter, labels: dict[str, str], dist: dict[str, float], count: float, total: float
) -> None:
    """Cumulative buckets from per-bound counts."""
    running = 0.0
    buckets = []
    for bound in SCORE_BOUNDS:
        running += dist.get(repr(bound), 0.0)
        buckets.append((bound, running))
    w.histogram(SCORE_DIST, label_block(labels), Histogram(buckets=buckets, sum=total, count=count))


RENDERERS = renderer_for(LangfuseProjectSnapshot, render_langfuse)
