"""One vLLM instance, read into one stable shape whatever the vLLM version (V0 0.5/0.6, V1 0.8 → 0.33)."""

from __future__ import annotations

from typing import Literal

import msgspec

from inferwatch.contracts.base import Histogram, Occurrence, Snapshot

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

    ``None`` means the running vLLM version does not expose that figure (never a fake zero).

    Attributes:
        model_name: the ``model_name`` label (first served name).
        engine: data-parallel engine index (``"0"`` on V0, which has no engine label).
        requests_running: ``num_requests_running``.
        requests_waiting: ``num_requests_waiting``.
        requests_swapped: V0 only.
        kv_cache_usage_ratio: ``kv_cache_usage_perc`` (V1) or ``gpu_cache_usage_perc`` (V0), 0..1.
        prefix_cache_queries_total: tokens queried (V1).
        prefix_cache_hits_total: tokens hit (V1).
        prefix_cache_hit_ratio: V0.6's gauge; ``None`` when prefix caching is off (vLLM reports -1).
        preemptions_total: ``num_preemptions_total``.
        prompt_tokens_total: ``prompt_tokens_total``.
        generation_tokens_total: ``generation_tokens_total``.
        request_success_total: cumulative finished requests by ``finished_reason``.
        ttft_seconds: time to first token.
        inter_token_latency_seconds: V1 ``inter_token_latency_seconds``, V0 ``time_per_output_token_seconds``.
        e2e_latency_seconds: end-to-end request latency.
        queue_time_seconds: V1 ``request_queue_time_seconds``.
        prefill_time_seconds: V1 ``request_prefill_time_seconds``.
        decode_time_seconds: V1 ``request_decode_time_seconds``.
        prompt_tokens: per-request prompt length histogram.
        generation_tokens: per-request generation length histogram.
    """

    model_name: str
    engine: str = "0"
    requests_running: float | None = None
    requests_waiting: float | None = None
    requests_swapped: float | None = None
    kv_cache_usage_ratio: float | None = None
    prefix_cache_queries_total: float | None = None
    prefix_cache_hits_total: float | None = None
    prefix_cache_hit_ratio: float | None = None
    preemptions_total: float | None = None
    prompt_tokens_total: float | None = None
    generation_tokens_total: float | None = None
    request_success_total: dict[str, float] = {}
    ttft_seconds: Histogram | None = None
    inter_token_latency_seconds: Histogram | None = None
    e2e_latency_seconds: Histogram | None = None
    queue_time_seconds: Histogram | None = None
    prefill_time_seconds: Histogram | None = None
    decode_time_seconds: Histogram | None = None
    prompt_tokens: Histogram | None = None
    generation_tokens: Histogram | None = None


class VllmInstanceSnapshot(Snapshot, frozen=True, kw_only=True, tag="vllm.instance"):
    """One scrape of one vLLM instance. ``source`` is the target's base URL.

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
