"""Pure reading of vLLM's endpoints into `contracts.vllm` shapes, for every vLLM generation.

V0 (0.5/0.6) and V1 (0.8 → 0.33) name things differently. The family names per field are declared on
`contracts.vllm`'s metric fields (``kv_cache_usage_perc`` or ``gpu_cache_usage_perc``…); this module knows
the rest: the ``engine`` label (absent on V0), ``-1`` for disabled prefix caching, counters declared with or
without ``_total``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import msgspec

from inferwatch.contracts.base import Histogram
from inferwatch.contracts.metrics import MetricField, metric_fields
from inferwatch.contracts.vllm import (
    Generation,
    ModelStatus,
    VllmEngineStats,
    VllmHttpHandlerStats,
    VllmLoraStats,
    VllmModelCard,
)
from inferwatch.shared.exposition import ExpositionError, MetricFamily, Sample, histograms_by, parse_exposition

V = "vllm:"

# The mapping is the contract's metric fields (contracts.metrics): stable field ← vLLM family names.
ENGINE_METRICS = metric_fields(VllmEngineStats)
CACHE_CONFIG = "cache_config_info"  # one labelled info series per engine; its fields are read by `_cache_config`
_GENERIC = tuple(m for m in ENGINE_METRICS if m.sources and CACHE_CONFIG not in m.sources)
GAUGES = tuple(m for m in _GENERIC if m.type == "gauge" and not m.label)
LABELLED_GAUGES = tuple(m for m in _GENERIC if m.type == "gauge" and m.label)
COUNTERS = tuple(m for m in _GENERIC if m.type == "counter" and not m.label)
LABELLED_COUNTERS = tuple(m for m in _GENERIC if m.type == "counter" and m.label)
HISTOGRAMS = tuple(m for m in _GENERIC if m.type == "histogram")
# vLLM 0.6 reports -1 for these when prefix caching is off
NEGATIVE_MEANS_DISABLED = frozenset({"prefix_cache_hit_ratio", "cpu_prefix_cache_hit_ratio"})
LORA_INFO = V + "lora_requests_info"
HTTP_REQUESTS = "http_requests"  # prometheus-fastapi-instrumentator, mounted by vLLM's API server (no prefix)
HTTP_DURATION = "http_request_duration_seconds"
MAX_LABEL_VALUES = 16  # per labelled figure of one engine (finished_reason, reason, source, position…)
MAX_LORA_ADAPTERS = 32  # per instance and state; vLLM's --max-loras is usually well below
MAX_HTTP_HANDLERS = 32  # vLLM has about twenty routes; more is a cardinality bomb


def wanted_families() -> frozenset[str]:
    """Every family name (with and without ``_total``) the scraper needs: the parser keeps only these."""
    names: set[str] = {LORA_INFO, V + CACHE_CONFIG, HTTP_REQUESTS, HTTP_REQUESTS + "_total", HTTP_DURATION}
    for m in ENGINE_METRICS:
        names.update(V + c for c in m.sources)
        if m.type == "counter":
            names.update(V + c + "_total" for c in m.sources)
    return frozenset(names)


WANTED = wanted_families()

EngineKey = tuple[str, str]  # (model_name, engine)


def _key(labels: Mapping[str, str]) -> EngineKey:
    return labels.get("model_name", ""), labels.get("engine", "0")


def source_family(families: Mapping[str, MetricFamily], candidates: Iterable[str]) -> MetricFamily | None:
    """The first of ``candidates`` (names without the ``vllm:`` prefix, newest first) the exposition has."""
    for name in candidates:
        fam = families.get(V + name + "_total") or families.get(V + name)
        if fam is not None:
            return fam
    return None


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _int(value: object) -> int:
    if not isinstance(value, int | float | str):
        return 0
    try:
        return int(value)
    except (ValueError, OverflowError):
        return 0


def _histograms(fam: MetricFamily) -> dict[EngineKey, Histogram]:
    return histograms_by(fam, _key)


def _plain(samples: Iterable[Sample], suffix: str = "") -> dict[EngineKey, float]:
    out: dict[EngineKey, float] = {}
    for s in samples:
        if suffix and not s.name.endswith(suffix):
            continue
        out[_key(s.labels)] = s.value
    return out


def detect_generation(families: Mapping[str, MetricFamily]) -> Generation:
    """``v1`` when V1-only families or the ``engine`` label are present, else ``v0``."""
    if any(
        n in families
        for n in (
            V + "kv_cache_usage_perc",
            V + "inter_token_latency_seconds",
            V + "prefix_cache_queries_total",
            V + "prefix_cache_queries",
        )
    ):
        return "v1"
    for fam in families.values():
        if fam.samples and "engine" in fam.samples[0].labels:
            return "v1"
    return "v0"


def _gauge_values(fam: MetricFamily, m: MetricField) -> Iterator[tuple[EngineKey, object]]:
    for key, value in _plain(fam.samples).items():
        # a disabled prefix cache (-1) exports nothing rather than a fake number, but the engine still exists
        yield key, _DISABLED if m.field in NEGATIVE_MEANS_DISABLED and value < 0 else _finite(value)


def _counter_values(fam: MetricFamily, m: MetricField) -> Iterator[tuple[EngineKey, object]]:
    for key, value in _plain(fam.samples, "_total").items():
        yield key, _finite(value)


def _labelled_values(fam: MetricFamily, m: MetricField, suffix: str) -> Iterator[tuple[EngineKey, object]]:
    by_label: dict[EngineKey, dict[str, float]] = {}
    for s in fam.samples:
        if s.name.endswith(suffix) and math.isfinite(s.value):
            by_label.setdefault(_key(s.labels), {})[s.labels.get(m.label, "")] = s.value
    yield from by_label.items()


def _labelled_gauge_values(fam: MetricFamily, m: MetricField) -> Iterator[tuple[EngineKey, object]]:
    yield from _labelled_values(fam, m, "")


def _labelled_counter_values(fam: MetricFamily, m: MetricField) -> Iterator[tuple[EngineKey, object]]:
    yield from _labelled_values(fam, m, "_total")


def _histogram_values(fam: MetricFamily, m: MetricField) -> Iterator[tuple[EngineKey, object]]:
    yield from _histograms(fam).items()


_DISABLED = object()  # a value that vLLM reports as switched off
Reader = Callable[[MetricFamily, MetricField], Iterator[tuple[EngineKey, object]]]  # (engine, value) pairs
_READERS: tuple[tuple[tuple[MetricField, ...], Reader], ...] = (
    (GAUGES, _gauge_values),
    (LABELLED_GAUGES, _labelled_gauge_values),
    (COUNTERS, _counter_values),
    (LABELLED_COUNTERS, _labelled_counter_values),
    (HISTOGRAMS, _histogram_values),
)


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _cache_config(families: Mapping[str, MetricFamily]) -> dict[str, dict[str, float]]:
    """``vllm:cache_config_info`` per engine index → the KV-capacity fields (``model_name`` is not a label).

    The capacity is ``num_gpu_blocks × block_size``, or vLLM 0.33's ``kv_cache_size_tokens`` when the blocks
    are unknown; label values that are not numbers (``None`` before the profile run) give no field.
    """
    fam = families.get(V + CACHE_CONFIG)
    by_engine: dict[str, dict[str, float]] = {}
    for s in fam.samples if fam is not None else ():
        blocks, block_size = _number(s.labels.get("num_gpu_blocks")), _number(s.labels.get("block_size"))
        capacity = blocks * block_size if blocks is not None and block_size is not None else None
        values = {
            "kv_cache_capacity_tokens": capacity
            if capacity is not None
            else _number(s.labels.get("kv_cache_size_tokens")),
            "kv_cache_blocks": blocks,
            "kv_cache_block_size_tokens": block_size,
            "gpu_memory_utilization_ratio": _number(s.labels.get("gpu_memory_utilization")),
        }
        by_engine[s.labels.get("engine", "0")] = {k: v for k, v in values.items() if v is not None}
    return by_engine


def _derived(values: Mapping[str, object]) -> dict[str, object]:
    """The figures declared without a source family, from the engine's counters since it started.

    Prompt tokens by source as shares of their sum; speculative decoding's acceptance ratio (V1 has only the
    counters; V0 reports its own) and mean acceptance length, vLLM's own figure (its log line): 1 + accepted /
    drafts, the bonus token included.
    """
    out: dict[str, object] = {}
    by_source = values.get("prompt_tokens_by_source_total")
    total = sum(by_source.values()) if isinstance(by_source, dict) else 0.0
    if isinstance(by_source, dict) and total > 0:
        out["prompt_tokens_source_ratio"] = {source: tokens / total for source, tokens in by_source.items()}
    accepted, proposed = values.get("spec_decode_accepted_tokens_total"), values.get("spec_decode_draft_tokens_total")
    drafts = values.get("spec_decode_drafts_total")
    if isinstance(accepted, float) and isinstance(proposed, float) and proposed > 0:
        out["spec_decode_acceptance_ratio"] = accepted / proposed
    if isinstance(accepted, float) and isinstance(drafts, float) and drafts > 0:
        out["spec_decode_mean_acceptance_length"] = 1.0 + accepted / drafts
    return out


def engine_stats(families: Mapping[str, MetricFamily]) -> list[VllmEngineStats]:
    """One `VllmEngineStats` per (model_name, engine) found in the exposition."""
    fields: dict[EngineKey, dict[str, object]] = {}
    for declared, read in _READERS:
        for m in declared:
            fam = source_family(families, m.sources)
            if fam is None:
                continue
            for key, value in read(fam, m):
                values = fields.setdefault(key, {})
                if value is not _DISABLED:
                    values[m.field] = value
    config = _cache_config(families)
    for (_, engine), values in fields.items():
        values.update(config.get(engine, {}))
        for name, value in _derived(values).items():
            values.setdefault(name, value)  # V0 reports its own acceptance ratio
    return [
        VllmEngineStats(model_name=model, engine=engine, **values)  # type: ignore[arg-type]
        for (model, engine), values in sorted(fields.items())
        if model
    ]


def _adapters(text: str) -> list[str]:
    return sorted({name.strip() for name in text.split(",") if name.strip()})


def lora_stats(families: Mapping[str, MetricFamily]) -> tuple[VllmLoraStats | None, int]:
    """``vllm:lora_requests_info`` → the current LoRA state and how many adapter series the cap left out.

    Every state change adds a series whose value is the time it was set, so the newest (highest value) is
    the current one; its labels carry comma-joined adapter names and ``max_lora``.
    """
    fam = families.get(LORA_INFO)
    samples = [s for s in fam.samples if math.isfinite(s.value)] if fam is not None else []
    if not samples:
        return None, 0
    newest = max(samples, key=lambda s: s.value)
    running = _adapters(newest.labels.get("running_lora_adapters", ""))
    waiting = _adapters(newest.labels.get("waiting_lora_adapters", ""))
    dropped = max(len(running) - MAX_LORA_ADAPTERS, 0) + max(len(waiting) - MAX_LORA_ADAPTERS, 0)
    stats = VllmLoraStats(
        max_adapters=_number(newest.labels.get("max_lora")),
        running_adapters=float(len(running)),
        waiting_adapters=float(len(waiting)),
        adapter_running=dict.fromkeys(running[:MAX_LORA_ADAPTERS], 1.0),
        adapter_waiting=dict.fromkeys(waiting[:MAX_LORA_ADAPTERS], 1.0),
    )
    return stats, dropped


def _status_class(status: str) -> str:
    """``2xx`` as the instrumentator groups it by default; a raw ``503`` (grouping off) becomes ``5xx``."""
    return status[0] + "xx" if len(status) == 3 and status[0].isdigit() else status


def http_stats(families: Mapping[str, MetricFamily]) -> tuple[list[VllmHttpHandlerStats], int]:
    """The API server's ``http_*`` families → per-handler figures (methods summed), and the handlers dropped.

    Handlers beyond ``MAX_HTTP_HANDLERS`` (in sorted order) are left out and counted.
    """
    requests: dict[str, dict[str, float]] = {}
    fam = families.get(HTTP_REQUESTS)
    for s in fam.samples if fam is not None else ():
        if s.name.endswith("_total") and math.isfinite(s.value):
            per = requests.setdefault(s.labels.get("handler", ""), {})
            status = _status_class(s.labels.get("status", ""))
            per[status] = per.get(status, 0.0) + s.value
    durations = histograms_by(families.get(HTTP_DURATION), lambda labels: labels.get("handler", ""))
    handlers = sorted(set(requests) | set(durations))
    stats = [
        VllmHttpHandlerStats(handler=h, requests_total=requests.get(h, {}), request_duration_seconds=durations.get(h))
        for h in handlers[:MAX_HTTP_HANDLERS]
    ]
    return stats, max(len(handlers) - MAX_HTTP_HANDLERS, 0)


LABELLED = tuple(m for m in ENGINE_METRICS if m.label)  # dict fields, each bounded to MAX_LABEL_VALUES keys


def cap_engines(
    engines: list[VllmEngineStats], max_engines: int, served: Iterable[str] = ()
) -> tuple[list[VllmEngineStats], dict[str, int]]:
    """Bound one scrape's label sets: at most ``max_engines`` engines, ``MAX_LABEL_VALUES`` per labelled figure.

    A target that suddenly exposes thousands of ``model_name``/``engine`` values must not turn into
    thousands of series downstream. Engines of the ``served`` model names (``/v1/models``) are kept first,
    then the others in sorted order, so a flood of new names cannot push out the real model. vLLM's own
    label sets (finished_reason, reason, sleep_state, source, position) have a handful of values each.

    Returns:
        The kept engines (sorted by model name, engine) and the count of what was dropped, by reason
        (``max_engines``, ``max_<label>s`` such as ``max_finished_reasons``); empty when nothing was dropped.
    """
    dropped: dict[str, int] = {}
    if len(engines) > max_engines:
        wanted = set(served)
        ranked = sorted(engines, key=lambda e: (e.model_name not in wanted, e.model_name, e.engine))
        dropped["max_engines"] = len(engines) - max(max_engines, 0)
        engines = sorted(ranked[: max(max_engines, 0)], key=lambda e: (e.model_name, e.engine))
    kept: list[VllmEngineStats] = []
    for engine in engines:
        bounded: dict[str, dict[str, float]] = {}
        for m in LABELLED:
            values: dict[str, float] = getattr(engine, m.field)
            if len(values) > MAX_LABEL_VALUES:
                reason = f"max_{m.label}s"
                dropped[reason] = dropped.get(reason, 0) + len(values) - MAX_LABEL_VALUES
                bounded[m.field] = dict(sorted(values.items())[:MAX_LABEL_VALUES])
        kept.append(msgspec.structs.replace(engine, **bounded) if bounded else engine)
    return kept, dropped


def cap_models(models: list[VllmModelCard], max_models: int) -> tuple[list[VllmModelCard], int]:
    """The first ``max_models`` cards of ``/v1/models`` and how many were dropped."""
    limit = max(max_models, 0)
    return models[:limit], max(len(models) - limit, 0)


def parse_models(body: bytes) -> list[VllmModelCard]:
    """``/v1/models`` → cards (unknown fields ignored; ``parent: null`` → ``""``).

    Raises:
        ValueError: not a model list.
    """
    try:
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ValueError(f"invalid /v1/models JSON: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), list):
        raise ValueError("/v1/models: no data list")
    cards = []
    for item in raw["data"]:
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            cards.append(
                VllmModelCard(
                    id=item["id"],
                    root=str(item.get("root") or ""),
                    parent=str(item.get("parent") or ""),
                    max_model_len=_int(item.get("max_model_len") or 0),
                )
            )
    return cards


@dataclass(frozen=True, slots=True)
class InstanceReading:
    """What one scrape's answers say about the instance, bounded by the caps.

    Attributes:
        error: ``parse_error`` (malformed ``/metrics``), ``invalid_models`` (malformed ``/v1/models``), or ``""``.
        parse_detail: the parser's message when ``error`` is ``parse_error``.
        generation: ``v0``/``v1`` from the exposition, ``""`` without one.
        engines: per (model_name, engine), capped.
        models: ``/v1/models`` cards, capped.
        dropped: label sets the caps left out, by reason.
        version: ``/version``'s ``version``, ``""`` if unknown.
        lora: the LoRA adapters (capped), ``None`` without LoRA.
        http: the API server's per-handler HTTP figures (capped).
    """

    error: str
    parse_detail: str
    generation: Generation
    engines: list[VllmEngineStats]
    models: list[VllmModelCard]
    dropped: dict[str, int]
    version: str
    lora: VllmLoraStats | None = None
    http: list[VllmHttpHandlerStats] = field(default_factory=list)


def read_instance(
    metrics_body: bytes | None,
    models_body: bytes | None,
    version_doc: object,
    *,
    max_engines: int,
    max_models: int,
) -> InstanceReading:
    """The pure half of a scrape: the bodies that came back (``None`` for a failed request) → one reading.

    ``version_doc`` is the decoded ``/version`` JSON (anything else counts as unknown).
    """
    error = parse_detail = ""
    generation: Generation = ""
    engines: list[VllmEngineStats] = []
    lora: VllmLoraStats | None = None
    http: list[VllmHttpHandlerStats] = []
    dropped_lora = dropped_handlers = 0
    if metrics_body is not None:
        try:
            families = parse_exposition(metrics_body, families=WANTED)
            generation = detect_generation(families)
            engines = engine_stats(families)
            lora, dropped_lora = lora_stats(families)
            http, dropped_handlers = http_stats(families)
        except ExpositionError as exc:
            error, parse_detail = "parse_error", str(exc)
    models: list[VllmModelCard] = []
    if models_body is not None:
        try:
            models = parse_models(models_body)
        except ValueError:
            error = error or "invalid_models"
    # cardinality caps: a target exposing thousands of label values costs the same as a normal one
    engines, dropped = cap_engines(engines, max_engines, (m.id for m in models))
    models, dropped_models = cap_models(models, max_models)
    for reason, count in (
        ("max_models", dropped_models),
        ("max_lora_adapters", dropped_lora),
        ("max_http_handlers", dropped_handlers),
    ):
        if count:
            dropped[reason] = count
    version = str(version_doc.get("version", "")) if isinstance(version_doc, dict) else ""
    return InstanceReading(error, parse_detail, generation, engines, models, dropped, version, lora, http)


def model_status(*, reachable: bool, health_ok: bool, has_models: bool, previous: ModelStatus) -> ModelStatus:
    """The instance's model status.

    ``ready``: ``/health`` is 200 and ``/v1/models`` lists a model. ``loading``: the server answers
    but is not there yet. ``error``: unreachable, or it was ready and went unhealthy (a dead engine
    answers ``/health`` with 503 too, and never comes back by itself).
    """
    if not reachable:
        return "error"
    if health_ok and has_models:
        return "ready"
    if previous in ("ready", "error"):
        return "error"
    return "loading"


def rendezvous_owner(key: str, replicas: Iterable[str]) -> str:
    """The replica that owns ``key`` by rendezvous (highest-random-weight) hashing; ``""`` for none.

    Every replica computes the same answer from the same replica set; when a replica joins or leaves,
    only the keys it wins (or won) change owner.
    """
    best, best_weight = "", -1
    for replica in replicas:
        weight = int.from_bytes(hashlib.blake2b(f"{replica}\x00{key}".encode(), digest_size=8).digest(), "big")
        if weight > best_weight or (weight == best_weight and replica < best):
            best, best_weight = replica, weight
    return best


def spread_offset(key: str, interval_s: float) -> float:
    """A stable offset in ``[0, interval_s)`` for ``key``, so scrapes spread over the interval."""
    fraction = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / 2**64
    return fraction * interval_s
