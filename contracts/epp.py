"""An llm-d endpoint picker (EPP): one stable shape over every generation of its metric names."""

from __future__ import annotations

from typing import Literal

import msgspec

from inferwatch.contracts.base import Histogram, Snapshot

# The EPP's metric naming generations, newest first; ``""`` when no EPP family was read.
EppNaming = Literal["", "llm_d_epp", "llm_d_router_epp", "inference_objective", "inference_model", "inference_pool"]


class EppObjectiveStats(msgspec.Struct, frozen=True, kw_only=True):
    """Request metrics of one (model_name, target_model_name) pair.

    Attributes:
        model_name: requested model.
        target_model_name: model the request was routed to.
        requests_total: cumulative requests.
        errors_total: cumulative errors by ``error_code``.
        request_duration_seconds: request latency.
        input_tokens: per-request input token histogram.
        output_tokens: per-request output token histogram.
        running_requests: in flight now.
    """

    model_name: str
    target_model_name: str = ""
    requests_total: float | None = None
    errors_total: dict[str, float] = {}
    request_duration_seconds: Histogram | None = None
    input_tokens: Histogram | None = None
    output_tokens: Histogram | None = None
    running_requests: float | None = None


class EppPoolStats(msgspec.Struct, frozen=True, kw_only=True):
    """One InferencePool as the EPP sees it.

    Attributes:
        pool: pool name.
        average_kv_cache_utilization_ratio: mean KV-cache use over ready endpoints.
        average_queue_size: mean queue length.
        ready_endpoints: ready pods.
        per_endpoint_queue_size: queue length per pod/endpoint.
    """

    pool: str
    average_kv_cache_utilization_ratio: float | None = None
    average_queue_size: float | None = None
    ready_endpoints: float | None = None
    per_endpoint_queue_size: dict[str, float] = {}


class EppSnapshot(Snapshot, frozen=True, kw_only=True, tag="epp.instance"):
    """One scrape of one EPP ``/metrics``. ``source`` is the target URL.

    Attributes:
        up: scrape succeeded.
        error: reason when not, saying what to fix (``unauthorized: token rejected``…).
        naming: detected metric generation (``inference_model``, ``inference_objective``, ``llm_d_epp``…).
        objectives: per model pair.
        pools: per pool.
        scheduler_e2e_seconds: scheduler latency.
        scheduler_attempts_total: by status.
        flow_control_queue_size: flow-control queue, when the feature gate is on.
    """

    up: bool
    error: str = ""
    naming: EppNaming = ""
    objectives: list[EppObjectiveStats] = []
    pools: list[EppPoolStats] = []
    scheduler_e2e_seconds: Histogram | None = None
    scheduler_attempts_total: dict[str, float] = {}
    flow_control_queue_size: float | None = None
