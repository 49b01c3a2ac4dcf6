"""vLLM instance snapshots → ``inferwatch_vllm_*``: one stable set of series for every vLLM version."""

from __future__ import annotations

from typing import get_args

from inferwatch.contracts.vllm import (
    ModelStatus,
    VllmEngineStats,
    VllmHttpHandlerStats,
    VllmInstanceSnapshot,
    VllmLoraStats,
)
from inferwatch.services.aggregator.render import (
    Family,
    SeriesWriter,
    field_families,
    label_block,
    renderer_for,
    write_fields,
)

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
    "(max_engines, max_models, max_lora_adapters, max_http_handlers, max_<label>s per engine), by reason.",
)
SCRAPE_DURATION = Family(P + "scrape_duration_seconds", "gauge", "Duration of the last scrape.")
MODEL_STATUS = Family(
    P + "model_status", "gauge", "1 for the instance's current model status (loading, ready, error), 0 for the others."
)
HEALTH = Family(P + "health_ok", "gauge", "1 when /health answered 200.")
LOAD_DURATION = Family(P + "model_load_duration_seconds", "gauge", "Seconds from first seen loading to ready.")
MAX_MODEL_LEN = Family(P + "max_model_len_tokens", "gauge", "Context length of each served model.")
ENGINE_FAMILIES = field_families(VllmEngineStats, P)  # one family per metric field of the contract
LORA_FAMILIES = field_families(VllmLoraStats, P + "lora_")  # per instance: vLLM's LoRA gauge has no model label
HTTP_FAMILIES = field_families(VllmHttpHandlerStats, P + "http_")  # per API-server handler

STATUSES = get_args(ModelStatus)


def render_vllm(event: VllmInstanceSnapshot, w: SeriesWriter) -> None:
    """One vLLM instance."""
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
    if event.lora is not None:
        write_fields(w, LORA_FAMILIES, base, event.lora)
    for handler in event.http:
        labels = label_block({"target": target, "container": container, "handler": handler.handler})
        write_fields(w, HTTP_FAMILIES, labels, handler)


def _render_engine(w: SeriesWriter, target: str, container: str, e: VllmEngineStats) -> None:
    labels = label_block({"target": target, "container": container, "model_name": e.model_name, "engine": e.engine})
    write_fields(w, ENGINE_FAMILIES, labels, e)


RENDERERS = renderer_for(VllmInstanceSnapshot, render_vllm)
