"""A LiteLLM proxy: health, model routes, usage, cost and fallbacks, in one stable shape across versions."""

from __future__ import annotations

from typing import Literal

import msgspec

from inferwatch.contracts.base import Histogram, Snapshot
from inferwatch.contracts.catalog import ModelType

# A deployment's health: LiteLLM's ``litellm_deployment_state`` 0/1/2, or ``/health``'s two lists.
RouteStatus = Literal["healthy", "partial_outage", "outage", "unknown"]
# How the proxy's ``/metrics/`` answered: ``prometheus`` (callback on), ``licence_gated`` (only the premium
# marker), ``empty`` (nothing of LiteLLM), ``absent`` (404), ``unauthorized``, ``error``; ``""`` before the first poll.
MetricsMode = Literal["", "prometheus", "licence_gated", "empty", "absent", "unauthorized", "error"]


class ModelRoute(msgspec.Struct, frozen=True, kw_only=True):
    """One deployment behind a LiteLLM model group (a row of ``/model/info``).

    Attributes:
        model_group: the public model name clients ask for.
        deployment_id: LiteLLM's ``model_info.id``.
        model_type: ``llm`` / ``embedding`` / ``reranker`` / ``image`` / ``audio`` / ``other``.
        provider: ``litellm_provider`` (``openai``, ``hosted_vllm``…).
        api_base: upstream endpoint (credentials stripped).
        status: ``healthy`` / ``partial_outage`` / ``outage`` / ``unknown``.
        input_cost_per_token: USD.
        output_cost_per_token: USD.
        max_tokens: context window, 0 if unknown.
        mode: ``model_info.mode`` as LiteLLM reports it (``chat``, ``embedding``, ``rerank``…).
        max_input_tokens: 0 if unknown.
        max_output_tokens: 0 if unknown.
        state_latched: the group-named ``litellm_deployment_state`` series says 2 (cooldown) while the
            deployment's own series says healthy: LiteLLM latches it after recovery; not an outage by itself.
        cooldowns_total: times the router cooled the deployment down.
        failures_total: failed calls to the deployment.
        remaining_requests: rate-limit requests left, as the upstream reported (lowest seen).
        remaining_tokens: rate-limit tokens left, as the upstream reported (lowest seen).
    """

    model_group: str
    deployment_id: str
    model_type: ModelType
    provider: str = ""
    api_base: str = ""
    status: RouteStatus = "unknown"
    input_cost_per_token: float = 0.0
    output_cost_per_token: float = 0.0
    max_tokens: int = 0
    mode: str = ""
    max_input_tokens: int = 0
    max_output_tokens: int = 0
    state_latched: bool = False
    cooldowns_total: float | None = None
    failures_total: float | None = None
    remaining_requests: float | None = None
    remaining_tokens: float | None = None


class ModelUsage(msgspec.Struct, frozen=True, kw_only=True):
    """Cumulative usage of one model group as the proxy's Prometheus callback reports it.

    Attributes:
        model_group: public model name.
        requests_total: requests by status class (``2xx``, ``4xx``, ``5xx``) or ``success``/``failure``.
        input_tokens_total: prompt tokens.
        output_tokens_total: completion tokens.
        spend_usd_total: cumulative spend.
        fallbacks_ok_total: successful fallbacks away from this group.
        fallbacks_failed_total: failed fallbacks.
        request_latency_seconds: end-to-end proxy latency.
        ttft_seconds: time to first token.
        total_tokens_total: input + output tokens.
        errors_total: failed requests by exception class (``RouterRateLimitError``…).
        llm_api_latency_seconds: time spent in the upstream LLM API.
        overhead_latency_seconds: latency LiteLLM itself adds.
        queue_time_seconds: time from arrival at the proxy to pre-call processing.
    """

    model_group: str
    requests_total: dict[str, float] = {}
    input_tokens_total: float | None = None
    output_tokens_total: float | None = None
    spend_usd_total: float | None = None
    fallbacks_ok_total: float | None = None
    fallbacks_failed_total: float | None = None
    request_latency_seconds: Histogram | None = None
    ttft_seconds: Histogram | None = None
    total_tokens_total: float | None = None
    errors_total: dict[str, float] = {}
    llm_api_latency_seconds: Histogram | None = None
    overhead_latency_seconds: Histogram | None = None
    queue_time_seconds: Histogram | None = None


class LitellmProxySnapshot(Snapshot, frozen=True, kw_only=True, tag="litellm.proxy"):
    """One poll of one LiteLLM proxy. ``source`` is the configured proxy name.

    Attributes:
        up: the proxy answered ``/health/liveliness``.
        ready: ``/health/readiness`` said healthy.
        db_status: readiness' ``db`` field (``connected``, ``Not connected``…).
        version: LiteLLM version, when reported.
        error: last error outcome, ``""`` when fine.
        metrics_mode: how ``/metrics/`` answered (`MetricsMode`).
        routes: known deployments.
        usage: per model group usage.
        in_flight_requests: from ``/health/backlog`` or the in-flight gauge.
        queued_requests: ``/health/backlog`` queued requests.
        rejected_requests: ``/health/backlog`` rejected requests (cumulative).
        callbacks: success callbacks from ``/health/readiness/details``.
        errors_total: the poller's failed calls to this proxy, by ``endpoint:outcome``.
        poll_duration_s: how long the last poll took.
        base_url: the proxy's base URL (no credentials).
    """

    up: bool
    ready: bool = False
    db_status: str = ""
    version: str = ""
    error: str = ""
    metrics_mode: MetricsMode = ""
    routes: list[ModelRoute] = []
    usage: list[ModelUsage] = []
    in_flight_requests: float | None = None
    queued_requests: float | None = None
    rejected_requests: float | None = None
    callbacks: list[str] = []
    errors_total: dict[str, float] = {}
    poll_duration_s: float = 0.0
    base_url: str = ""
