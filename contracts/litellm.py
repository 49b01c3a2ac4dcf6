"""A LiteLLM proxy: health, model routes, usage, cost and fallbacks, in one stable shape across versions."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from inferwatch.contracts.base import Histogram, Snapshot
from inferwatch.contracts.catalog import ModelType
from inferwatch.contracts.metrics import metric

# A deployment's health: LiteLLM's ``litellm_deployment_state`` 0/1/2, or ``/health``'s two lists.
RouteStatus = Literal["healthy", "partial_outage", "outage", "unknown"]
# How the proxy's ``/metrics/`` answered: ``prometheus`` (callback on), ``licence_gated`` (only the premium
# marker), ``empty`` (nothing of LiteLLM), ``absent`` (404), ``unauthorized``, ``error``; ``""`` before the first poll.
MetricsMode = Literal["", "prometheus", "absent", "licence_gated", "unauthorized", "error", "empty"]


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

    The fields declared with `metric` are exported metrics (``inferwatch_litellm_<field>``; LiteLLM family
    names newest first); the fallback counters share one family with a ``result`` label (aggregator).

    Attributes:
        model_group: public model name.
        fallbacks_ok_total: successful fallbacks away from this group.
        fallbacks_failed_total: failed fallbacks.
    """

    model_group: str
    requests_total: Annotated[
        dict[str, float],
        metric(
            "counter",
            "Client requests by model group and status class (2xx, 4xx, 5xx, none = refused by cooldown; "
            "success/failure on LiteLLM versions without status codes).",
            "litellm_proxy_total_requests_metric",
            "litellm_requests_metric",
            unit="requests",
            label="status",
        ),
    ] = {}
    errors_total: Annotated[
        dict[str, float],
        metric(
            "counter",
            "Failed requests by model group and exception class.",
            "litellm_proxy_failed_requests_metric",
            "litellm_llm_api_failed_requests_metric",
            unit="requests",
            label="exception_class",
        ),
    ] = {}
    input_tokens_total: Annotated[
        float | None,
        metric(
            "counter",
            "Input (prompt) tokens by model group.",
            "litellm_input_tokens_metric",
            "litellm_input_tokens",
            unit="tokens",
        ),
    ] = None
    output_tokens_total: Annotated[
        float | None,
        metric(
            "counter",
            "Output (completion) tokens by model group.",
            "litellm_output_tokens_metric",
            "litellm_output_tokens",
            unit="tokens",
        ),
    ] = None
    tokens_total: Annotated[
        float | None,
        metric(
            "counter",
            "Input + output tokens by model group.",
            "litellm_total_tokens_metric",
            "litellm_total_tokens",
            unit="tokens",
        ),
    ] = None
    spend_usd_total: Annotated[
        float | None, metric("counter", "Spend in USD by model group.", "litellm_spend_metric", unit="usd")
    ] = None
    fallbacks_ok_total: float | None = None
    fallbacks_failed_total: float | None = None
    request_latency_seconds: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "End-to-end proxy latency by model group.",
            "litellm_request_total_latency_metric",
            unit="seconds",
        ),
    ] = None
    time_to_first_token_seconds: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Time to first token by model group.",
            "litellm_llm_api_time_to_first_token_metric",
            unit="seconds",
        ),
    ] = None
    llm_api_latency_seconds: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Upstream LLM API latency by model group.",
            "litellm_llm_api_latency_metric",
            unit="seconds",
        ),
    ] = None
    overhead_latency_seconds: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Latency added by LiteLLM itself, by model group.",
            "litellm_overhead_latency_metric",
            unit="seconds",
        ),
    ] = None
    request_queue_time_seconds: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Time before pre-call processing, by model group.",
            "litellm_request_queue_time_seconds",
            unit="seconds",
        ),
    ] = None


class LitellmProxySnapshot(Snapshot, frozen=True, kw_only=True, tag="litellm.proxy"):
    """One poll of one LiteLLM proxy. ``source`` is the configured proxy name.

    Subject version 2: `ModelUsage` fields were renamed to the exported names (``ttft_seconds`` became
    ``time_to_first_token_seconds``, ``queue_time_seconds`` ``request_queue_time_seconds``,
    ``total_tokens_total`` ``tokens_total``).

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

    SUBJECT_VERSION: ClassVar[int] = 2

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
