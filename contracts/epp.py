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
    """

    SUBJECT_VERSION: ClassVar[int] = 2

    up: bool
    error: str = ""
    naming: EppNaming = ""
    objectives: list[EppObjectiveStats] = []
    pools: list[EppPoolStats] = []
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
