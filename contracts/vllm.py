"""One vLLM instance, read into one stable shape whatever the vLLM version (V0 0.5/0.6, V1 0.8 → 0.33)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from inferwatch.contracts.base import Histogram, Occurrence, Snapshot
from inferwatch.contracts.metrics import metric

# ``loading``: the process answers but serves no model yet; ``ready``; ``error``: unreachable or broken.
ModelStatus = Literal["loading", "ready", "error"]
# The vLLM engine generation read from the exposition; ``""`` when nothing was read (gRPC, scrape failed).
Generation = Literal["", "v0", "v1"]


class VllmModelCard(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of ``/v1/models``.

    Attributes:
        id: served model name.
        root: the ``--model`` path or HF id (LoRA: the adapter path).
        parent: base model for LoRA adapters, else ``""``.
        max_model_len: context length, 0 when not reported (LoRA cards).
    """

    id: str
    root: str = ""
    parent: str = ""
    max_model_len: int = 0


class VllmEngineStats(msgspec.Struct, frozen=True, kw_only=True):
    """The metrics of one (model_name, engine) pair; counters are the engine's cumulative values.

    Every other field is one exported metric, declared once here with `metric`: the scraper reads it from
    the listed vLLM families (newest name first, ``vllm:`` prefix implied), the aggregator exports it as
    ``inferwatch_vllm_<field>``. ``None`` means the running vLLM version does not expose that figure
    (never a fake zero).

    Attributes:
        model_name: the ``model_name`` label (first served name).
        engine: data-parallel engine index (``"0"`` on V0, which has no engine label).
    """

    model_name: str
    engine: str = "0"
    requests_running: Annotated[
        float | None, metric("gauge", "Requests running on the engine.", "num_requests_running", unit="requests")
    ] = None
    requests_waiting: Annotated[
        float | None,
        metric("gauge", "Requests waiting in the engine's queue.", "num_requests_waiting", unit="requests"),
    ] = None
    requests_swapped: Annotated[
        float | None,
        metric("gauge", "Requests swapped to CPU (vLLM V0 only).", "num_requests_swapped", unit="requests"),
    ] = None
    kv_cache_usage_ratio: Annotated[
        float | None,
        metric("gauge", "KV-cache usage, 0..1.", "kv_cache_usage_perc", "gpu_cache_usage_perc", unit="ratio"),
    ] = None
    prefix_cache_queries_total: Annotated[
        float | None,
        metric(
            "counter",
            "Prefix-cache queries (tokens, vLLM V1).",
            "prefix_cache_queries",
            "gpu_prefix_cache_queries",
            unit="tokens",
        ),
    ] = None
    prefix_cache_hits_total: Annotated[
        float | None,
        metric(
            "counter",
            "Prefix-cache hits (tokens, vLLM V1).",
            "prefix_cache_hits",
            "gpu_prefix_cache_hits",
            unit="tokens",
        ),
    ] = None
    prefix_cache_hit_ratio: Annotated[
        float | None,
        metric(
            "gauge",
            "Prefix-cache hit ratio as vLLM 0.6 reports it (absent when caching is off).",
            "gpu_prefix_cache_hit_rate",
            unit="ratio",
        ),
    ] = None
    preemptions_total: Annotated[
        float | None, metric("counter", "Requests preempted by the scheduler.", "num_preemptions", unit="requests")
    ] = None
    prompt_tokens_total: Annotated[
        float | None, metric("counter", "Prompt tokens processed.", "prompt_tokens", unit="tokens")
    ] = None
    generation_tokens_total: Annotated[
        float | None, metric("counter", "Tokens generated.", "generation_tokens", unit="tokens")
    ] = None
    request_success_total: Annotated[
        dict[str, float],
        metric(
            "counter",
            "Finished requests by finished_reason.",
            "request_success",
            unit="requests",
            label="finished_reason",
        ),
    ] = {}
    time_to_first_token_seconds: Annotated[
        Histogram | None, metric("histogram", "Time to first token.", "time_to_first_token_seconds", unit="seconds")
    ] = None
    inter_token_latency_seconds: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Inter-token latency (V0: time_per_output_token_seconds).",
            "inter_token_latency_seconds",
            "time_per_output_token_seconds",
            unit="seconds",
        ),
    ] = None
    e2e_request_latency_seconds: Annotated[
        Histogram | None,
        metric("histogram", "End-to-end request latency.", "e2e_request_latency_seconds", unit="seconds"),
    ] = None
    request_queue_time_seconds: Annotated[
        Histogram | None,
        metric("histogram", "Time requests waited in the queue (V1).", "request_queue_time_seconds", unit="seconds"),
    ] = None
    request_prefill_time_seconds: Annotated[
        Histogram | None,
        metric("histogram", "Prefill time per request (V1).", "request_prefill_time_seconds", unit="seconds"),
    ] = None
    request_decode_time_seconds: Annotated[
        Histogram | None,
        metric("histogram", "Decode time per request (V1).", "request_decode_time_seconds", unit="seconds"),
    ] = None
    request_prompt_tokens: Annotated[
        Histogram | None,
        metric("histogram", "Prompt length per request (tokens).", "request_prompt_tokens", unit="tokens"),
    ] = None
    request_generation_tokens: Annotated[
        Histogram | None,
        metric("histogram", "Generated length per request (tokens).", "request_generation_tokens", unit="tokens"),
    ] = None


class VllmInstanceSnapshot(Snapshot, frozen=True, kw_only=True, tag="vllm.instance"):
    """One scrape of one vLLM instance. ``source`` is the target's base URL.

    Subject version 2: the engine fields were renamed to the exported names (``ttft_seconds`` became
    ``time_to_first_token_seconds``, ``e2e_latency_seconds`` ``e2e_request_latency_seconds``, the other
    per-request histograms took their ``request_`` names), so a v1 consumer cannot read it.

    Attributes:
        up: the scrape of ``/metrics`` succeeded.
        error: why not (``timeout``, ``http_5xx``, ``parse_error: …``), ``""`` when up.
        status: model status: ``loading`` (process there, ``/health`` failing or no models yet),
            ``ready``, or ``error`` (unreachable or broken).
        health_ok: ``/health`` answered 200.
        version: vLLM version from ``/version`` (or container metadata), ``""`` if unknown.
        generation: ``v0`` or ``v1`` as detected from the exposition.
        models: ``/v1/models`` cards.
        engines: one entry per (model_name, engine).
        scrape_duration_s: how long the scrape took.
        load_duration_s: seconds from first seen loading to ready, once known.
        container_id: joined container, when known.
        container_name: joined container name.
        gpus: GPUs assigned to the container.
        labels: extra bounded labels from discovery.
        errors_total: this collector's cumulative failed scrapes of the target, by reason.
        dropped_series: label sets left out of this scrape by the collector's caps, by reason
            (``max_engines``, ``max_finished_reasons``, ``max_models``); empty when nothing was dropped.
    """

    SUBJECT_VERSION: ClassVar[int] = 2

    up: bool
    error: str = ""
    status: ModelStatus = "ready"
    health_ok: bool = False
    version: str = ""
    generation: Generation = ""
    models: list[VllmModelCard] = []
    engines: list[VllmEngineStats] = []
    scrape_duration_s: float = 0.0
    load_duration_s: float | None = None
    container_id: str = ""
    container_name: str = ""
    gpus: list[str] = []
    labels: dict[str, str] = {}
    errors_total: dict[str, float] = {}
    dropped_series: dict[str, int] = {}


class VllmModelLoaded(Occurrence, frozen=True, kw_only=True, tag="vllm.loaded"):
    """An instance went from loading to ready. ``source`` is the target URL."""

    models: list[str]
    load_duration_s: float
