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
from dataclasses import dataclass

import msgspec

from inferwatch.contracts.base import Histogram
from inferwatch.contracts.metrics import MetricField, metric_fields
from inferwatch.contracts.vllm import Generation, ModelStatus, VllmEngineStats, VllmModelCard
from inferwatch.shared.exposition import ExpositionError, MetricFamily, Sample, histograms_by, parse_exposition

V = "vllm:"

# The mapping is the contract's metric fields (contracts.metrics): stable field ← vLLM family names.
ENGINE_METRICS = metric_fields(VllmEngineStats)
GAUGES = tuple(m for m in ENGINE_METRICS if m.type == "gauge")
COUNTERS = tuple(m for m in ENGINE_METRICS if m.type == "counter" and not m.label)
LABELLED_COUNTERS = tuple(m for m in ENGINE_METRICS if m.type == "counter" and m.label)
HISTOGRAMS = tuple(m for m in ENGINE_METRICS if m.type == "histogram")
NEGATIVE_MEANS_DISABLED = "prefix_cache_hit_ratio"  # vLLM 0.6 reports -1 when prefix caching is off


def wanted_families() -> frozenset[str]:
    """Every family name (with and without ``_total``) the scraper needs: the parser keeps only these."""
    names: set[str] = set()
    for m in ENGINE_METRICS:
        names.update(V + c for c in m.sources)
        if m.type == "counter":
            names.update(V + c + "_total" for c in m.sources)
    return frozenset(names)


WANTED = wanted_families()

EngineKey = tuple[str, str]  # (model_name, engine)


def _key(labels: Mapping[str, str]) -> EngineKey:
    return labels.get("model_name", ""), labels.get("engine", "0")


def _family(families: Mapping[str, MetricFamily], candidates: Iterable[str]) -> MetricFamily | None:
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
        yield key, _DISABLED if m.field == NEGATIVE_MEANS_DISABLED and value < 0 else _finite(value)


def _counter_values(fam: MetricFamily, m: MetricField) -> Iterator[tuple[EngineKey, object]]:
    for key, value in _plain(fam.samples, "_total").items():
        yield key, _finite(value)


def _labelled_counter_values(fam: MetricFamily, m: MetricField) -> Iterator[tuple[EngineKey, object]]:
    by_label: dict[EngineKey, dict[str, float]] = {}
    for s in fam.samples:
        if s.name.endswith("_total"):
            by_label.setdefault(_key(s.labels), {})[s.labels.get(m.label, "")] = s.value
    yield from by_label.items()


def _histogram_values(fam: MetricFamily, m: MetricField) -> Iterator[tuple[EngineKey, object]]:
    yield from _histograms(fam).items()


_DISABLED = object()  # a value that vLLM reports as switched off
Reader = Callable[[MetricFamily, MetricField], Iterator[tuple[EngineKey, object]]]  # (engine, value) pairs
_READERS: tuple[tuple[tuple[MetricField, ...], Reader], ...] = (
    (GAUGES, _gauge_values),
    (COUNTERS, _counter_values),
    (LABELLED_COUNTERS, _labelled_counter_values),
    (HISTOGRAMS, _histogram_values),
)


def engine_stats(families: Mapping[str, MetricFamily]) -> list[VllmEngineStats]:
    """One `VllmEngineStats` per (model_name, engine) found in the exposition."""
    fields: dict[EngineKey, dict[str, object]] = {}
    for declared, read in _READERS:
        for m in declared:
            fam = _family(families, m.sources)
            if fam is None:
                continue
            for key, value in read(fam, m):
                values = fields.setdefault(key, {})
                if value is not _DISABLED:
                    values[m.field] = value
    return [
        VllmEngineStats(model_name=model, engine=engine, **values)  # type: ignore[arg-type]
        for (model, engine), values in sorted(fields.items())
        if model
    ]


MAX_FINISHED_REASONS = 16  # vLLM has a handful (stop, length, abort, error); more is a cardinality bomb


def cap_engines(
    engines: list[VllmEngineStats], max_engines: int, served: Iterable[str] = ()
) -> tuple[list[VllmEngineStats], dict[str, int]]:
    """Bound one scrape's label sets: at most ``max_engines`` engines, ``MAX_FINISHED_REASONS`` reasons each.

    A target that suddenly exposes thousands of ``model_name``/``engine`` values must not turn into
    thousands of series downstream. Engines of the ``served`` model names (``/v1/models``) are kept first,
    then the others in sorted order, so a flood of new names cannot push out the real model.

    Returns:
        The kept engines (sorted by model name, engine) and the count of what was dropped, by reason
        (``max_engines``, ``max_finished_reasons``); the dict is empty when nothing was dropped.
    """
    dropped: dict[str, int] = {}
    if len(engines) > max_engines:
        wanted = set(served)
        ranked = sorted(engines, key=lambda e: (e.model_name not in wanted, e.model_name, e.engine))
        dropped["max_engines"] = len(engines) - max(max_engines, 0)
        engines = sorted(ranked[: max(max_engines, 0)], key=lambda e: (e.model_name, e.engine))
    kept: list[VllmEngineStats] = []
    for engine in engines:
        reasons = engine.request_success_total
        if len(reasons) > MAX_FINISHED_REASONS:
            dropped["max_finished_reasons"] = (
                dropped.get("max_finished_reasons", 0) + len(reasons) - MAX_FINISHED_REASONS
            )
            bounded = dict(sorted(reasons.items())[:MAX_FINISHED_REASONS])
            engine = msgspec.structs.replace(engine, request_success_total=bounded)
        kept.append(engine)
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
    """

    error: str
    parse_detail: str
    generation: Generation
    engines: list[VllmEngineStats]
    models: list[VllmModelCard]
    dropped: dict[str, int]
    version: str


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
    if metrics_body is not None:
        try:
            families = parse_exposition(metrics_body, families=WANTED)
            generation = detect_generation(families)
            engines = engine_stats(families)
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
    if dropped_models:
        dropped["max_models"] = dropped_models
    version = str(version_doc.get("version", "")) if isinstance(version_doc, dict) else ""
    return InstanceReading(error, parse_detail, generation, engines, models, dropped, version)


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
