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
    # ---- batch shape, request timing and shape (V1 unless noted) --------------------------------------------
    iteration_tokens: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Tokens per engine step (prefill + decode): the batch size in tokens.",
            "iteration_tokens_total",
            unit="tokens",
        ),
    ] = None
    request_inference_time_seconds: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Time requests spent running (prefill + decode), per request (V1).",
            "request_inference_time_seconds",
            unit="seconds",
        ),
    ] = None
    request_time_per_output_token_seconds: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Mean time per output token of each request (V1).",
            "request_time_per_output_token_seconds",
            unit="seconds",
        ),
    ] = None
    request_prefill_time_per_token_seconds: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Prefill time per prompt token of each request (vLLM 0.10 only).",
            "time_per_prefill_token_request_seconds",
            unit="seconds",
        ),
    ] = None
    request_prefill_kv_computed_tokens: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "New KV tokens computed in prefill per request, prompt-cache hits excluded (V1).",
            "request_prefill_kv_computed_tokens",
            unit="tokens",
        ),
    ] = None
    request_preemptions: Annotated[
        Histogram | None,
        metric("histogram", "Times each request was preempted (V1).", "request_num_preemptions", unit="preemptions"),
    ] = None
    request_params_n: Annotated[
        Histogram | None,
        metric("histogram", "The n request parameter (sequences per request).", "request_params_n", unit="sequences"),
    ] = None
    request_params_best_of: Annotated[
        Histogram | None,
        metric(
            "histogram", "The best_of request parameter (vLLM 0.5 only).", "request_params_best_of", unit="sequences"
        ),
    ] = None
    request_params_max_tokens: Annotated[
        Histogram | None,
        metric("histogram", "The max_tokens request parameter (V1).", "request_params_max_tokens", unit="tokens"),
    ] = None
    request_max_generation_tokens: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "Most tokens a request may generate (max_tokens capped by the context left).",
            "request_max_num_generation_tokens",
            unit="tokens",
        ),
    ] = None
    # ---- why requests wait or are refused ----------------------------------------------------------------
    requests_waiting_by_reason: Annotated[
        dict[str, float],
        metric(
            "gauge",
            "Waiting requests by reason: capacity (no room to schedule) or deferred (LoRA budget, KV transfer).",
            "num_requests_waiting_by_reason",
            unit="requests",
            label="reason",
        ),
    ] = {}
    admission_rejections_total: Annotated[
        dict[str, float],
        metric(
            "counter",
            "Requests refused by a queue limit, by reason (counted per model by the API server, shown on engine 0).",
            "admission_rejections",
            unit="requests",
            label="reason",
        ),
    ] = {}
    engine_sleep_state: Annotated[
        dict[str, float],
        metric(
            "gauge",
            "1 for the engine's sleep state (awake, weights_offloaded, discard_all), 0 for the others.",
            "engine_sleep_state",
            label="sleep_state",
        ),
    ] = {}
    # ---- prompt-cache effectiveness ------------------------------------------------------------------------
    prompt_tokens_by_source_total: Annotated[
        dict[str, float],
        metric(
            "counter",
            "Prompt tokens by where their KV came from: local_compute, local_cache_hit, external_kv_transfer.",
            "prompt_tokens_by_source",
            unit="tokens",
            label="source",
        ),
    ] = {}
    prompt_tokens_source_ratio: Annotated[
        dict[str, float],
        metric(
            "gauge",
            "Share of prompt tokens from each source since the engine started (by_source over their sum).",
            unit="ratio",
            label="source",
        ),
    ] = {}
    prompt_tokens_cached_total: Annotated[
        float | None,
        metric(
            "counter", "Prompt tokens served from a cache (local + external).", "prompt_tokens_cached", unit="tokens"
        ),
    ] = None
    prompt_tokens_cached_by_source_total: Annotated[
        dict[str, float],
        metric(
            "counter",
            "Cached prompt tokens by the tier that supplied them (device, host, disk, p2p, external_unspecified).",
            "prompt_tokens_cached_by_source",
            unit="tokens",
            label="source",
        ),
    ] = {}
    external_prefix_cache_queries_total: Annotated[
        float | None,
        metric(
            "counter",
            "Prefix-cache queries to the KV connector's cross-instance cache (tokens).",
            "external_prefix_cache_queries",
            unit="tokens",
        ),
    ] = None
    external_prefix_cache_hits_total: Annotated[
        float | None,
        metric(
            "counter",
            "Prefix-cache hits in the KV connector's cross-instance cache (tokens).",
            "external_prefix_cache_hits",
            unit="tokens",
        ),
    ] = None
    mm_cache_queries_total: Annotated[
        float | None,
        metric("counter", "Multi-modal cache queries (items).", "mm_cache_queries", unit="items"),
    ] = None
    mm_cache_hits_total: Annotated[
        float | None,
        metric("counter", "Multi-modal cache hits (items).", "mm_cache_hits", unit="items"),
    ] = None
    # ---- KV capacity, from vllm:cache_config_info (one per engine; no model_name label) ------------------------
    kv_cache_capacity_tokens: Annotated[
        float | None,
        metric(
            "gauge",
            "KV-cache capacity in tokens (num_gpu_blocks x block_size, or kv_cache_size_tokens).",
            "cache_config_info",
            unit="tokens",
        ),
    ] = None
    kv_cache_blocks: Annotated[
        float | None,
        metric("gauge", "KV-cache blocks on the GPU (num_gpu_blocks).", "cache_config_info", unit="blocks"),
    ] = None
    kv_cache_block_size_tokens: Annotated[
        float | None, metric("gauge", "Tokens per KV-cache block.", "cache_config_info", unit="tokens")
    ] = None
    gpu_memory_utilization_ratio: Annotated[
        float | None,
        metric(
            "gauge",
            "Share of GPU memory vLLM was told to use (--gpu-memory-utilization).",
            "cache_config_info",
            unit="ratio",
        ),
    ] = None
    # ---- V0 leftovers ---------------------------------------------------------------------------------------
    cpu_kv_cache_usage_ratio: Annotated[
        float | None,
        metric("gauge", "CPU (swap) KV-cache usage, 0..1 (vLLM V0 only).", "cpu_cache_usage_perc", unit="ratio"),
    ] = None
    cpu_prefix_cache_hit_ratio: Annotated[
        float | None,
        metric(
            "gauge",
            "CPU prefix-cache hit ratio as vLLM 0.6 reports it (absent when caching is off).",
            "cpu_prefix_cache_hit_rate",
            unit="ratio",
        ),
    ] = None
    # ---- speculative decoding (only with a draft model / method) -------------------------------------------
    spec_decode_drafts_total: Annotated[
        float | None, metric("counter", "Speculative drafts proposed (V1).", "spec_decode_num_drafts", unit="drafts")
    ] = None
    spec_decode_draft_tokens_total: Annotated[
        float | None,
        metric("counter", "Speculative tokens proposed.", "spec_decode_num_draft_tokens", unit="tokens"),
    ] = None
    spec_decode_accepted_tokens_total: Annotated[
        float | None,
        metric("counter", "Speculative tokens accepted.", "spec_decode_num_accepted_tokens", unit="tokens"),
    ] = None
    spec_decode_emitted_tokens_total: Annotated[
        float | None,
        metric(
            "counter",
            "Tokens emitted by speculative steps, bonus tokens included (V0 only).",
            "spec_decode_num_emitted_tokens",
            unit="tokens",
        ),
    ] = None
    spec_decode_accepted_tokens_per_position_total: Annotated[
        dict[str, float],
        metric(
            "counter",
            "Speculative tokens accepted at each draft position (V1).",
            "spec_decode_num_accepted_tokens_per_pos",
            unit="tokens",
            label="position",
        ),
    ] = {}
    spec_decode_acceptance_ratio: Annotated[
        float | None,
        metric(
            "gauge",
            "Accepted over proposed speculative tokens since the engine started (V0: its acceptance-rate gauge).",
            "spec_decode_draft_acceptance_rate",
            unit="ratio",
        ),
    ] = None
    spec_decode_mean_acceptance_length: Annotated[
        float | None,
        metric(
            "gauge",
            "Tokens produced per speculative draft, 1 + accepted/drafts, since the engine started (V1).",
            unit="tokens",
        ),
    ] = None
    spec_decode_efficiency_ratio: Annotated[
        float | None,
        metric(
            "gauge",
            "Emitted over the most tokens speculative steps could emit (V0 only).",
            "spec_decode_efficiency",
            unit="ratio",
        ),
    ] = None
    # ---- utilisation (non-zero only with --enable-mfu-metrics) -----------------------------------------------
    estimated_flops_per_gpu_total: Annotated[
        float | None,
        metric(
            "counter",
            "Floating-point operations per GPU as vLLM estimates them (with --enable-mfu-metrics).",
            "estimated_flops_per_gpu",
            unit="flops",
        ),
    ] = None
    estimated_read_bytes_per_gpu_total: Annotated[
        float | None,
        metric(
            "counter",
            "Bytes read from GPU memory per GPU as vLLM estimates them (with --enable-mfu-metrics).",
            "estimated_read_bytes_per_gpu",
            unit="bytes",
        ),
    ] = None
    estimated_write_bytes_per_gpu_total: Annotated[
        float | None,
        metric(
            "counter",
            "Bytes written to GPU memory per GPU as vLLM estimates them (with --enable-mfu-metrics).",
            "estimated_write_bytes_per_gpu",
            unit="bytes",
        ),
    ] = None


class VllmLoraStats(msgspec.Struct, frozen=True, kw_only=True):
    """The LoRA adapters of one instance, from ``vllm:lora_requests_info``.

    vLLM exposes them as label values (comma-joined adapter names, ``max_lora``) of a gauge whose value is the
    time it was set, one series per combination ever seen: the newest series (highest value) is the current
    state. Per-adapter series are bounded (``MAX_LORA_ADAPTERS`` in the scraper; the rest counted in
    ``dropped_series["max_lora_adapters"]``); the counts are exact.
    """

    max_adapters: Annotated[
        float | None,
        metric("gauge", "LoRA adapters the engine holds at once (--max-loras).", "lora_requests_info", unit="adapters"),
    ] = None
    running_adapters: Annotated[
        float | None,
        metric("gauge", "LoRA adapters with running requests.", "lora_requests_info", unit="adapters"),
    ] = None
    waiting_adapters: Annotated[
        float | None,
        metric("gauge", "LoRA adapters with waiting requests.", "lora_requests_info", unit="adapters"),
    ] = None
    adapter_running: Annotated[
        dict[str, float],
        metric("gauge", "1 for each LoRA adapter with running requests.", "lora_requests_info", label="adapter"),
    ] = {}
    adapter_waiting: Annotated[
        dict[str, float],
        metric("gauge", "1 for each LoRA adapter with waiting requests.", "lora_requests_info", label="adapter"),
    ] = {}


class VllmHttpHandlerStats(msgspec.Struct, frozen=True, kw_only=True):
    """The API server's HTTP figures for one handler (prometheus-fastapi-instrumentator's ``http_*``, V1 only).

    Attributes:
        handler: the route template, e.g. ``/v1/chat/completions`` (vLLM leaves out /metrics, /health…).
    """

    handler: str
    requests_total: Annotated[
        dict[str, float],
        metric(
            "counter",
            "API-server HTTP requests by handler and status class (2xx, 3xx, 4xx, 5xx); methods summed.",
            "http_requests",
            unit="requests",
            label="status",
        ),
    ] = {}
    request_duration_seconds: Annotated[
        Histogram | None,
        metric(
            "histogram",
            "API-server HTTP request latency by handler; methods summed.",
            "http_request_duration_seconds",
            unit="seconds",
        ),
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
            (``max_engines``, ``max_models``, ``max_lora_adapters``, ``max_http_handlers`` and ``max_<label>s``
            for an engine's labelled figures, e.g. ``max_finished_reasons``); empty when nothing was dropped.
        lora: the LoRA adapters, when vLLM runs with LoRA.
        http: the API server's HTTP figures per handler (V1 with one API server).
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
    lora: VllmLoraStats | None = None
    http: list[VllmHttpHandlerStats] = []


class VllmModelLoaded(Occurrence, frozen=True, kw_only=True, tag="vllm.loaded"):
    """An instance went from loading to ready. ``source`` is the target URL."""

    models: list[str]
    load_duration_s: float
