"""An llm-d endpoint picker (EPP): one stable shape over every generation of its metric names."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from inferwatch.contracts.base import Histogram, Snapshot
from inferwatch.contracts.metrics import metric


def _generations(new: str, *, objective: str = "", pool: str = "", extension: str = "") -> tuple[str, ...]:
    """One quantity's family names, newest generation first (``shared/reference/vllm-and-epp.md`` §5.1).

    ``llm_d_epp_<new>`` and ``llm_d_router_epp_<new>`` for the llm-d router, then the Gateway API Inference
    Extension's ``inference_objective_``/``inference_model_<objective>`` (request metrics),
    ``inference_pool_<pool>`` (pool metrics) or ``inference_extension_<extension>`` (scheduler metrics).
    """
    legacy = [f"inference_objective_{objective}", f"inference_model_{objective}"] if objective else []
    legacy += [f"inference_pool_{pool}"] if pool else []
    legacy += [f"inference_extension_{extension}"] if extension else []
    return (f"llm_d_epp_{new}", f"llm_d_router_epp_{new}", *legacy)


# The EPP's metric naming generations, newest first; ``""`` when no EPP family was read.
EppNaming = Literal["", "llm_d_epp", "llm_d_router_epp", "inference_objective", "inference_model", "inference_pool"]


class EppObjectiveStats(msgspec.Struct, frozen=True, kw_only=True):
    """Request metrics of one (model_name, target_model_name) pair.

    Every other field is one exported metric, declared once here with `metric` (the EPP family names of
    every generation, newest first); the aggregator exports it as ``inferwatch_epp_<field>``.

    Attributes:
        model_name: requested model.
        target_model_name: model the request was routed to.
    """

    model_name: str
    target_model_name: str = ""
    requests_total: Annotated[
        float | None,
        metric(
            "counter",
            "Requests per requested model and target model.",
            *_generations("request", objective="request"),
            unit="requests",
        ),
    ] = None
    request_errors_total: Annotated[
        dict[str, float],
        metric(
            "counter",
            "Request errors per model pair and error code.",
            *_generations("request_error", objective="request_error"),
            unit="requests",
            label="error_code",
        ),
    ] = {}
    request_duration_seconds: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Request latency per model pair.",
            *_generations("request_duration_seconds", objective="request_duration_seconds"),
            unit="seconds",
        ),
    ] = None
    request_input_tokens: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Input tokens per request.",
            *_generations("request_input_tokens", objective="input_tokens"),
            unit="tokens",
        ),
    ] = None
    request_output_tokens: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Output tokens per request.",
            *_generations("request_output_tokens", objective="output_tokens"),
            unit="tokens",
        ),
    ] = None
    request_cached_tokens: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Prompt tokens served from the model servers' prefix cache, per request.",
            *_generations("request_cached_tokens", objective="prompt_cached_tokens"),
            unit="tokens",
        ),
    ] = None
    request_size_bytes: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Request body size per request.",
            *_generations("request_size_bytes", objective="request_sizes"),
            unit="bytes",
        ),
    ] = None
    response_size_bytes: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Response body size per request.",
            *_generations("response_size_bytes", objective="response_sizes"),
            unit="bytes",
        ),
    ] = None
    request_ttft_seconds: Annotated[
        dict[str, Histogram],
        metric(
            "histogram",
            "Time to first token per request, by streaming (true, false).",
            *_generations("request_ttft_seconds"),
            unit="seconds",
            label="streaming",
        ),
    ] = {}
    request_ntpot_seconds: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Normalized time per output token (request latency / output tokens).",
            *_generations("request_ntpot_seconds", objective="normalized_time_per_output_token_seconds"),
            unit="seconds",
        ),
    ] = None
    request_streaming_itl_seconds: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Inter-token latency of streamed responses.",
            *_generations("request_streaming_itl_seconds"),
            unit="seconds",
        ),
    ] = None
    request_streaming_tpot_seconds: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Time per output token of streamed responses.",
            *_generations("request_streaming_tpot_seconds"),
            unit="seconds",
        ),
    ] = None
    running_requests: Annotated[
        float | None,
        metric(
            "gauge",
            "Requests in flight per model pair.",
            *_generations("request_running", objective="running_requests"),
            unit="requests",
        ),
    ] = None


class EppPoolStats(msgspec.Struct, frozen=True, kw_only=True):
    """One InferencePool as the EPP sees it; every other field is one exported metric (`metric`).

    Attributes:
        pool: pool name.
    """

    pool: str
    pool_average_kv_cache_utilization_ratio: Annotated[
        float | None,
        metric(
            "gauge",
            "Mean KV-cache use of the pool's endpoints.",
            *_generations("average_kv_cache_utilization", pool="average_kv_cache_utilization"),
            unit="ratio",
        ),
    ] = None
    pool_average_queue_size: Annotated[
        float | None,
        metric(
            "gauge",
            "Mean queue length of the pool's endpoints.",
            *_generations("average_queue_size", pool="average_queue_size"),
            unit="requests",
        ),
    ] = None
    pool_average_running_requests: Annotated[
        float | None,
        metric(
            "gauge",
            "Mean running requests of the pool's endpoints.",
            *_generations("average_running_requests", pool="average_running_requests"),
            unit="requests",
        ),
    ] = None
    pool_std_dev_kv_cache_utilization_ratio: Annotated[
        float | None,
        metric(
            "gauge",
            "Standard deviation of KV-cache use across the pool's endpoints (load imbalance).",
            *_generations("std_dev_kv_cache_utilization"),
            unit="ratio",
        ),
    ] = None
    pool_std_dev_queue_size: Annotated[
        float | None,
        metric(
            "gauge",
            "Standard deviation of queue length across the pool's endpoints (load imbalance).",
            *_generations("std_dev_queue_size"),
            unit="requests",
        ),
    ] = None
    pool_std_dev_running_requests: Annotated[
        float | None,
        metric(
            "gauge",
            "Standard deviation of running requests across the pool's endpoints (load imbalance).",
            *_generations("std_dev_running_requests"),
            unit="requests",
        ),
    ] = None
    pool_ready_endpoints: Annotated[
        float | None,
        metric(
            "gauge",
            "Ready endpoints (pods) in the pool.",
            *_generations("ready_endpoints", pool="ready_pods"),
            unit="endpoints",
        ),
    ] = None
    endpoint_queue_size: Annotated[
        dict[str, float],
        metric(
            "gauge",
            "Queue length per pool endpoint.",
            *_generations("per_endpoint_queue_size", pool="per_pod_queue_size"),
            unit="requests",
            label="endpoint",
        ),
    ] = {}


class EppPrefixIndexerStats(msgspec.Struct, frozen=True, kw_only=True):
    """The prefix indexer of one prefix-cache scorer plugin: cache-aware routing as the EPP sees it.

    Every other field is one exported metric (`metric`). The GIE-era ``inference_extension_prefix_indexer_*``
    families carry no plugin labels: their one indexer has ``plugin_type`` and ``plugin_name`` ``""``.

    Attributes:
        plugin_type: the scorer plugin's type (``prefix-cache-scorer``…).
        plugin_name: the plugin's configured name.
    """

    plugin_type: str = ""
    plugin_name: str = ""
    prefix_indexer_hit_ratio: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Share of a request's prefix found in the indexer, per scheduling (0..1).",
            *_generations("prefix_indexer_hit_ratio", extension="prefix_indexer_hit_ratio"),
            unit="ratio",
        ),
    ] = None
    prefix_indexer_hit_ratio_mean: Annotated[
        float | None,
        metric(
            "gauge",
            "Mean prefix hit ratio of the scrape's histogram (sum / count); rate the histogram for a window.",
            *_generations("prefix_indexer_hit_ratio", extension="prefix_indexer_hit_ratio"),
            unit="ratio",
        ),
    ] = None
    prefix_indexer_hit_bytes: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Prefix bytes found in the indexer, per scheduling.",
            *_generations("prefix_indexer_hit_bytes", extension="prefix_indexer_hit_bytes"),
            unit="bytes",
        ),
    ] = None
    prefix_indexer_size: Annotated[
        float | None,
        metric(
            "gauge",
            "Entries held by the prefix indexer.",
            *_generations("prefix_indexer_size", extension="prefix_indexer_size"),
            unit="entries",
        ),
    ] = None


class EppPluginStats(msgspec.Struct, frozen=True, kw_only=True):
    """One scheduling or request-control plugin at one extension point; every other field is one metric.

    Attributes:
        extension_point: where the plugin runs (``Filter``, ``Scorer``, ``Picker``, ``PreRequest``…).
        plugin_type: the plugin's type.
        plugin_name: the plugin's configured name.
    """

    extension_point: str
    plugin_type: str = ""
    plugin_name: str = ""
    plugin_duration_seconds: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Time spent in the plugin, per call.",
            *_generations("plugin_duration_seconds", extension="plugin_duration_seconds"),
            unit="seconds",
        ),
    ] = None


class EppSnapshot(Snapshot, frozen=True, kw_only=True, tag="epp.instance"):
    """One scrape of one EPP ``/metrics``. ``source`` is the target URL.

    Subject version 2: fields were renamed to the exported names (``errors_total`` became
    ``request_errors_total``, ``input_tokens``/``output_tokens`` ``request_input_tokens``/
    ``request_output_tokens``, the pool figures took their ``pool_`` names, ``per_endpoint_queue_size``
    ``endpoint_queue_size``, ``scheduler_e2e_seconds`` ``scheduler_e2e_duration_seconds``). The
    scheduler fields are exported metrics declared with `metric`.

    Attributes:
        up: scrape succeeded.
        error: reason when not, saying what to fix (``unauthorized: token rejected``…).
        naming: detected metric generation (``inference_model``, ``inference_objective``, ``llm_d_epp``…).
        objectives: per model pair.
        pools: per pool.
        prefix_indexers: per prefix-cache scorer plugin (cache-aware routing).
        plugins: per (extension point, plugin type, plugin name).
    """

    SUBJECT_VERSION: ClassVar[int] = 2

    up: bool
    error: str = ""
    naming: EppNaming = ""
    objectives: list[EppObjectiveStats] = []
    pools: list[EppPoolStats] = []
    prefix_indexers: list[EppPrefixIndexerStats] = []
    plugins: list[EppPluginStats] = []
    scheduler_e2e_duration_seconds: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Scheduler end-to-end latency.",
            *_generations("scheduler_e2e_duration_seconds", extension="scheduler_e2e_duration_seconds"),
            unit="seconds",
        ),
    ] = None
    scheduler_attempts_total: Annotated[
        dict[str, float],
        metric(
            "counter",
            "Scheduling attempts by status.",
            *_generations("scheduler_attempts", extension="scheduler_attempts"),
            unit="attempts",
            label="status",
        ),
    ] = {}
    flow_control_queue_size: Annotated[
        float | None,
        metric(
            "gauge",
            "Flow-control queue size (flowControl feature gate).",
            *_generations("flow_control_queue_size", extension="flow_control_queue_size"),
            unit="requests",
        ),
    ] = None
    request_processing_duration_seconds: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Time the EPP spends processing a request (ext-proc request path).",
            *_generations("request_processing_duration_seconds"),
            unit="seconds",
        ),
    ] = None
    response_processing_duration_seconds: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Time the EPP spends processing a response (ext-proc response path).",
            *_generations("response_processing_duration_seconds"),
            unit="seconds",
        ),
    ] = None
