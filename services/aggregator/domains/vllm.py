"""vLLM instance snapshots → ``inferwatch_vllm_*``: one stable set of series for every vLLM version."""

from __future__ import annotations

from inferwatch.contracts import Event
from inferwatch.contracts.vllm import VllmEngineStats, VllmInstanceSnapshot
from inferwatch.services.aggregator.render import Family, SeriesWriter, escape_label_value, label_block

P = "inferwatch_vllm_"
UP = Family(P + "up", "gauge", "1 when the last scrape of the vLLM instance's /metrics succeeded.")
INFO = Family(
    P + "info", "gauge", "vLLM instance metadata (version, engine generation, models, container, GPUs); always 1."
)
SCRAPE_ERROR = Family(P + "scrape_error_info", "gauge", "Why the last scrape failed; 1 while failing.")
SCRAPE_ERRORS = Family(P + "scrape_errors", "counter", "Failed scrapes of the instance, by reason.")
DROPPED_SERIES = Family(
    P + "dropped_series",
    "gauge",
    "Label sets the scraper left out of the last scrape of the instance because of its caps "
    "(max_engines, max_finished_reasons, max_models), by reason.",
)
SCRAPE_DURATION = Family(P + "scrape_duration_seconds", "gauge", "Duration of the last scrape.")
MODEL_STATUS = Family(
    P + "model_status", "gauge", "1 for the instance's current model status (loading, ready, error), 0 for the others."
)
HEALTH = Family(P + "health_ok", "gauge", "1 when /health answered 200.")
LOAD_DURATION = Family(P + "model_load_duration_seconds", "gauge", "Seconds from first seen loading to ready.")
MAX_MODEL_LEN = Family(P + "max_model_len_tokens", "gauge", "Context length of each served model.")
RUNNING = Family(P + "requests_running", "gauge", "Requests running on the engine.")
WAITING = Family(P + "requests_waiting", "gauge", "Requests waiting in the engine's queue.")
SWAPPED = Family(P + "requests_swapped", "gauge", "Requests swapped to CPU (vLLM V0 only).")
KV_CACHE = Family(P + "kv_cache_usage_ratio", "gauge", "KV-cache usage, 0..1.")
PREFIX_QUERIES = Family(P + "prefix_cache_queries", "counter", "Prefix-cache queries (tokens, vLLM V1).")
PREFIX_HITS = Family(P + "prefix_cache_hits", "counter", "Prefix-cache hits (tokens, vLLM V1).")
PREFIX_HIT_RATIO = Family(
    P + "prefix_cache_hit_ratio", "gauge", "Prefix-cache hit ratio as vLLM 0.6 reports it (absent when caching is off)."
)
PREEMPTIONS = Family(P + "preemptions", "counter", "Requests preempted by the scheduler.")
PROMPT_TOKENS = Family(P + "prompt_tokens", "counter", "Prompt tokens processed.")
GENERATION_TOKENS = Family(P + "generation_tokens", "counter", "Tokens generated.")
REQUEST_SUCCESS = Family(P + "request_success", "counter", "Finished requests by finished_reason.")
TTFT = Family(P + "time_to_first_token_seconds", "histogram", "Time to first token.")
ITL = Family(P + "inter_token_latency_seconds", "histogram", "Inter-token latency (V0: time_per_output_token_seconds).")
E2E = Family(P + "e2e_request_latency_seconds", "histogram", "End-to-end request latency.")
QUEUE = Family(P + "request_queue_time_seconds", "histogram", "Time requests waited in the queue (V1).")
PREFILL = Family(P + "request_prefill_time_seconds", "histogram", "Prefill time per request (V1).")
DECODE = Family(P + "request_decode_time_seconds", "histogram", "Decode time per request (V1).")
PROMPT_LEN = Family(P + "request_prompt_tokens", "histogram", "Prompt length per request (tokens).")
GEN_LEN = Family(P + "request_generation_tokens", "histogram", "Generated length per request (tokens).")

STATUSES = ("loading", "ready", "error")


def render_vllm(event: Event, w: SeriesWriter) -> None:
    """One vLLM instance."""
    assert isinstance(event, VllmInstanceSnapshot)
    target = event.source
    container = event.container_name
    base = label_block({"target": target, "container": container})
    w.gauge(UP, base, 1.0 if event.up else 0.0)
    w.gauge(
        INFO,
        label_block(
            {
                "target": target,
                "container": container,
                "container_id": event.container_id[:12],
                "version": event.version,
                "generation": event.generation,
                "models": ",".join(m.id for m in event.models),
                "gpus": ",".join(event.gpus),
                **{k: v for k, v in event.labels.items() if k in ("host", "model")},
            }
        ),
        1.0,
    )
    if not event.up:
        w.gauge(SCRAPE_ERROR, label_block({"target": target, "reason": event.error}), 1.0)
    for reason, count in event.errors_total.items():
        w.counter(SCRAPE_ERRORS, label_block({"target": target, "reason": reason}), count)
    for reason, count in sorted(event.dropped_series.items()):
        w.gauge(DROPPED_SERIES, label_block({"target": target, "reason": reason}), float(count))
    w.gauge(SCRAPE_DURATION, base, event.scrape_duration_s)
    w.gauge(HEALTH, base, 1.0 if event.health_ok else 0.0)
    for status in STATUSES:
        w.gauge(
            MODEL_STATUS,
            label_block({"target": target, "container": container, "status": status}),
            1.0 if event.status == status else 0.0,
        )
    w.gauge(LOAD_DURATION, base, event.load_duration_s)
    for card in event.models:
        if card.max_model_len:
            w.gauge(MAX_MODEL_LEN, label_block({"target": target, "model_name": card.id}), float(card.max_model_len))
    for engine in event.engines:
        _render_engine(w, target, container, engine)


def _render_engine(w: SeriesWriter, target: str, container: str, e: VllmEngineStats) -> None:
    labels = label_block({"target": target, "container": container, "model_name": e.model_name, "engine": e.engine})
    w.gauge(RUNNING, labels, e.requests_running)
    w.gauge(WAITING, labels, e.requests_waiting)
    w.gauge(SWAPPED, labels, e.requests_swapped)
    w.gauge(KV_CACHE, labels, e.kv_cache_usage_ratio)
    w.counter(PREFIX_QUERIES, labels, e.prefix_cache_queries_total)
    w.counter(PREFIX_HITS, labels, e.prefix_cache_hits_total)
    w.gauge(PREFIX_HIT_RATIO, labels, e.prefix_cache_hit_ratio)
    w.counter(PREEMPTIONS, labels, e.preemptions_total)
    w.counter(PROMPT_TOKENS, labels, e.prompt_tokens_total)
    w.counter(GENERATION_TOKENS, labels, e.generation_tokens_total)
    inner = labels[1:-1]
    for reason, count in sorted(e.request_success_total.items()):
        w.counter(REQUEST_SUCCESS, "{" + inner + f',finished_reason="{escape_label_value(reason)}"' + "}", count)
    w.histogram(TTFT, labels, e.ttft_seconds)
    w.histogram(ITL, labels, e.inter_token_latency_seconds)
    w.histogram(E2E, labels, e.e2e_latency_seconds)
    w.histogram(QUEUE, labels, e.queue_time_seconds)
    w.histogram(PREFILL, labels, e.prefill_time_seconds)
    w.histogram(DECODE, labels, e.decode_time_seconds)
    w.histogram(PROMPT_LEN, labels, e.prompt_tokens)
    w.histogram(GEN_LEN, labels, e.generation_tokens)


RENDERERS = {VllmInstanceSnapshot: render_vllm}
