"""Pure reading of vLLM's endpoints into `contracts.vllm` shapes, for every vLLM generation.

V0 (0.5/0.6) and V1 (0.8 → 0.33) name things differently; this module is the one place that knows:
``kv_cache_usage_perc`` vs ``gpu_cache_usage_perc``, ``inter_token_latency_seconds`` vs
``time_per_output_token_seconds``, the ``engine`` label (absent on V0), ``-1`` for disabled prefix
caching, counters declared with or without ``_total``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping

import msgspec

from inferwatch.contracts.base import Histogram
from inferwatch.contracts.vllm import Generation, ModelStatus, VllmEngineStats, VllmModelCard
from inferwatch.shared.exposition import MetricFamily, Sample, histograms_by

V = "vllm:"

# Stable field → candidate family names, newest first.
GAUGES: dict[str, tuple[str, ...]] = {
    "requests_running": ("num_requests_running",),
    "requests_waiting": ("num_requests_waiting",),
    "requests_swapped": ("num_requests_swapped",),
    "kv_cache_usage_ratio": ("kv_cache_usage_perc", "gpu_cache_usage_perc"),
    "prefix_cache_hit_ratio": ("gpu_prefix_cache_hit_rate",),
}
COUNTERS: dict[str, tuple[str, ...]] = {
    "prefix_cache_queries_total": ("prefix_cache_queries", "gpu_prefix_cache_queries"),
    "prefix_cache_hits_total": ("prefix_cache_hits", "gpu_prefix_cache_hits"),
    "preemptions_total": ("num_preemptions",),
    "prompt_tokens_total": ("prompt_tokens",),
    "generation_tokens_total": ("generation_tokens",),
}
HISTOGRAMS: dict[str, tuple[str, ...]] = {
    "ttft_seconds": ("time_to_first_token_seconds",),
    "inter_token_latency_seconds": ("inter_token_latency_seconds", "time_per_output_token_seconds"),
    "e2e_latency_seconds": ("e2e_request_latency_seconds",),
    "queue_time_seconds": ("request_queue_time_seconds",),
    "prefill_time_seconds": ("request_prefill_time_seconds",),
    "decode_time_seconds": ("request_decode_time_seconds",),
    "prompt_tokens": ("request_prompt_tokens",),
    "generation_tokens": ("request_generation_tokens",),
}
SUCCESS = "request_success"


def wanted_families() -> frozenset[str]:
    """Every family name (with and without ``_total``) the scraper needs: the parser keeps only these."""
    names: set[str] = set()
    for candidates in (*GAUGES.values(), *HISTOGRAMS.values()):
        names.update(V + c for c in candidates)
    for candidates in (*COUNTERS.values(), (SUCCESS,)):
        for c in candidates:
            names.update((V + c, V + c + "_total"))
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


def engine_stats(families: Mapping[str, MetricFamily]) -> list[VllmEngineStats]:
    """One `VllmEngineStats` per (model_name, engine) found in the exposition."""
    fields: dict[EngineKey, dict[str, object]] = {}

    def put(key: EngineKey, name: str, value: object) -> None:
        fields.setdefault(key, {})[name] = value

    for field, candidates in GAUGES.items():
        fam = _family(families, candidates)
        if fam is None:
            continue
        for key, value in _plain(fam.samples).items():
            if field == "prefix_cache_hit_ratio" and value < 0:  # -1: prefix caching disabled
                fields.setdefault(key, {})
                continue
            put(key, field, _finite(value))
    for field, candidates in COUNTERS.items():
        fam = _family(families, candidates)
        if fam is not None:
            for key, value in _plain(fam.samples, "_total").items():
                put(key, field, _finite(value))
    for field, candidates in HISTOGRAMS.items():
        fam = _family(families, candidates)
        if fam is not None:
            for key, hist in _histograms(fam).items():
                put(key, field, hist)
    fam = _family(families, (SUCCESS,))
    if fam is not None:
        by_reason: dict[EngineKey, dict[str, float]] = {}
        for s in fam.samples:
            if s.name.endswith("_total"):
                by_reason.setdefault(_key(s.labels), {})[s.labels.get("finished_reason", "")] = s.value
        for key, reasons in by_reason.items():
            put(key, "request_success_total", reasons)
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
