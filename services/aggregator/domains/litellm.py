"""LiteLLM proxy snapshots → ``inferwatch_litellm_*``: availability matrix, usage, latency, errors, fallbacks, cost.

Series are keyed by ``proxy`` (the configured name) and ``model_group`` (and ``deployment_id`` for routes): the
poller has already aggregated API keys, teams and end users away, so cardinality is bounded by the proxy's
model list.
"""

from __future__ import annotations

from typing import get_args

from inferwatch.contracts.litellm import LitellmProxySnapshot, MetricsMode, ModelRoute, ModelUsage, RouteStatus
from inferwatch.services.aggregator.render import (
    Family,
    SeriesWriter,
    field_families,
    label_block,
    renderer_for,
    write_fields,
)

P = "inferwatch_litellm_"
UP = Family(P + "up", "gauge", "1 when the LiteLLM proxy answered /health/liveliness.")
READY = Family(P + "ready", "gauge", "1 when /health/readiness said healthy.")
INFO = Family(P + "info", "gauge", "LiteLLM proxy metadata (version, db status, metrics mode, base URL); always 1.")
METRICS_MODE = Family(
    P + "metrics_mode_info",
    "gauge",
    "1 for how the proxy's /metrics/ answered: prometheus, absent (no callback, 404), "
    "licence_gated (only litellm_not_a_premium_user_metric), unauthorized, error, empty.",
)
POLL_ERRORS = Family(P + "poll_errors", "counter", "Failed calls of the poller to the proxy, by endpoint and error.")
POLL_DURATION = Family(P + "poll_duration_seconds", "gauge", "Duration of the last poll.")
IN_FLIGHT = Family(P + "in_flight_requests", "gauge", "Requests in flight in the proxy.")
QUEUED = Family(P + "queued_requests", "gauge", "Requests queued by the proxy's admission control.")
REJECTED = Family(P + "rejected_requests", "gauge", "Requests rejected by admission control (as /health/backlog says).")
MODEL_INFO = Family(
    P + "model_info",
    "gauge",
    "One per deployment: type (llm, embedding, reranker, image, audio, other), mode, provider, endpoint; always 1.",
)
INPUT_COST = Family(P + "model_input_cost_usd_per_token", "gauge", "Configured input price per token.")
OUTPUT_COST = Family(P + "model_output_cost_usd_per_token", "gauge", "Configured output price per token.")
MAX_INPUT = Family(P + "model_max_input_tokens", "gauge", "Context window (input tokens) of the deployment.")
DEPLOYMENT_STATUS = Family(
    P + "deployment_status",
    "gauge",
    "Model availability matrix: 1 for the deployment's current status (healthy, "
    "partial_outage, outage, unknown), 0 for the others.",
)
LATCHED = Family(
    P + "deployment_cooldown_latched",
    "gauge",
    "1 when LiteLLM's group-named deployment_state series is latched at 2 after recovery "
    "(the deployment is healthy; do not alert on the raw LiteLLM gauge).",
)
COOLDOWNS = Family(P + "deployment_cooldowns", "counter", "Times the router cooled the deployment down.")
DEPLOYMENT_FAILURES = Family(P + "deployment_failures", "counter", "Failed calls to the deployment.")
REMAINING_REQUESTS = Family(
    P + "deployment_remaining_requests",
    "gauge",
    "Rate-limit requests left as the upstream reported (lowest across keys).",
)
REMAINING_TOKENS = Family(
    P + "deployment_remaining_tokens", "gauge", "Rate-limit tokens left as the upstream reported (lowest across keys)."
)
USAGE_FAMILIES = field_families(ModelUsage, P)  # one family per metric field of the contract
FALLBACKS = Family(
    P + "fallbacks", "counter", "Fallbacks away from the model group, by result (success: another group answered)."
)

STATUSES = get_args(RouteStatus)
METRICS_MODES = tuple(mode for mode in get_args(MetricsMode) if mode)  # "": not polled yet


def render_litellm(event: LitellmProxySnapshot, w: SeriesWriter) -> None:
    """One LiteLLM proxy."""
    proxy = event.source
    base = label_block({"proxy": proxy})
    w.gauge(UP, base, 1.0 if event.up else 0.0)
    w.gauge(READY, base, 1.0 if event.ready else 0.0)
    w.gauge(
        INFO,
        label_block(
            {
                "proxy": proxy,
                "version": event.version,
                "db_status": event.db_status,
                "metrics_mode": event.metrics_mode,
                "base_url": event.base_url,
                "error": event.error,
            }
        ),
        1.0,
    )
    if event.metrics_mode:
        for mode in METRICS_MODES:
            w.gauge(
                METRICS_MODE, label_block({"proxy": proxy, "mode": mode}), 1.0 if event.metrics_mode == mode else 0.0
            )
    for key, count in sorted(event.errors_total.items()):
        endpoint, _, error = key.rpartition(":")
        w.counter(POLL_ERRORS, label_block({"proxy": proxy, "endpoint": endpoint, "error": error}), count)
    w.gauge(POLL_DURATION, base, event.poll_duration_s)
    w.gauge(IN_FLIGHT, base, event.in_flight_requests)
    w.gauge(QUEUED, base, event.queued_requests)
    w.gauge(REJECTED, base, event.rejected_requests)
    for route in event.routes:
        _render_route(w, proxy, route)
    for usage in event.usage:
        _render_usage(w, proxy, usage)


def _render_route(w: SeriesWriter, proxy: str, r: ModelRoute) -> None:
    key = {"proxy": proxy, "model_group": r.model_group, "deployment_id": r.deployment_id}
    labels = label_block(key)
    w.gauge(
        MODEL_INFO,
        label_block({**key, "type": r.model_type, "mode": r.mode, "provider": r.provider, "endpoint": r.api_base}),
        1.0,
    )
    w.gauge(INPUT_COST, labels, r.input_cost_per_token)
    w.gauge(OUTPUT_COST, labels, r.output_cost_per_token)
    w.gauge(MAX_INPUT, labels, float(r.max_input_tokens or r.max_tokens) or None)
    for status in STATUSES:
        w.gauge(DEPLOYMENT_STATUS, label_block({**key, "status": status}), 1.0 if r.status == status else 0.0)
    w.gauge(LATCHED, labels, 1.0 if r.state_latched else 0.0)
    w.counter(COOLDOWNS, labels, r.cooldowns_total)
    w.counter(DEPLOYMENT_FAILURES, labels, r.failures_total)
    w.gauge(REMAINING_REQUESTS, labels, r.remaining_requests)
    w.gauge(REMAINING_TOKENS, labels, r.remaining_tokens)


def _render_usage(w: SeriesWriter, proxy: str, u: ModelUsage) -> None:
    key = {"proxy": proxy, "model_group": u.model_group}
    write_fields(w, USAGE_FAMILIES, label_block(key), u)
    w.counter(FALLBACKS, label_block({**key, "result": "success"}), u.fallbacks_ok_total)
    w.counter(FALLBACKS, label_block({**key, "result": "failure"}), u.fallbacks_failed_total)


RENDERERS = renderer_for(LitellmProxySnapshot, render_litellm)
