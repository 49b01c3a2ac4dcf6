"""Pure functions of the epp-scraper: EPP ``/metrics`` families of any naming generation → ``contracts.epp``.

Generations, newest first (see ``shared/reference/vllm-and-epp.md`` §5.1): ``llm_d_epp_*`` (llm-d router
after #1661), ``llm_d_router_epp_*`` (before it), ``inference_objective_*`` + ``inference_pool_*`` +
``inference_extension_*`` (GIE v1.1–v1.5), ``inference_model_*`` + ``inference_pool_*`` +
``inference_extension_*`` (GIE v0.2–v1.0). Current EPPs emit the ``llm_d_epp_*`` names *and* legacy twins:
for each quantity the newest generation present wins, so nothing is counted twice. Counter families are
keyed without ``_total`` (``shared.exposition``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

from inferwatch.contracts.base import Histogram
from inferwatch.contracts.epp import (
    EppNaming,
    EppObjectiveStats,
    EppPluginStats,
    EppPoolStats,
    EppPrefixIndexerStats,
    EppSnapshot,
)
from inferwatch.contracts.metrics import metric_fields
from inferwatch.shared.exposition import MetricFamily, histograms_by

NEW_PREFIXES = ("llm_d_epp_", "llm_d_router_epp_")

# field → candidate family names, newest first: the contracts' metric fields (contracts.metrics)
CANDIDATES: dict[str, tuple[str, ...]] = {
    m.field: m.sources
    for struct in (EppObjectiveStats, EppPoolStats, EppPrefixIndexerStats, EppPluginStats, EppSnapshot)
    for m in metric_fields(struct)
}
WANTED: frozenset[str] = frozenset(name for names in CANDIDATES.values() for name in names)
# newest first, as `EppNaming` lists them
GENERATIONS: tuple[EppNaming, ...] = tuple(naming for naming in get_args(EppNaming) if naming)

ObjectiveKey = tuple[str, str]
# The per-request histograms of a model pair read the same way: summed over fairness_id / priority.
OBJECTIVE_HISTOGRAMS = tuple(m.field for m in metric_fields(EppObjectiveStats) if m.type == "histogram" and not m.label)
POOL_GAUGES = tuple(m.field for m in metric_fields(EppPoolStats) if not m.label)


def detect_naming(families: Mapping[str, MetricFamily]) -> EppNaming:
    """The newest naming generation present (``""`` when no EPP family is there)."""
    for generation in GENERATIONS:
        if any(name.startswith(generation + "_") for name in families):
            return generation
    return ""


def _pick(families: Mapping[str, MetricFamily], field: str) -> MetricFamily | None:
    for name in CANDIDATES[field]:
        fam = families.get(name)
        if fam is not None and fam.samples:
            return fam
    return None


def _objective(labels: Mapping[str, str]) -> ObjectiveKey:
    return labels.get("model_name", ""), labels.get("target_model_name", "")


def _sum_by_objective(fam: MetricFamily | None) -> dict[ObjectiveKey, float]:
    out: dict[ObjectiveKey, float] = {}
    if fam is None:
        return out
    for s in fam.samples:
        if s.name.endswith("_created"):
            continue
        key = _objective(s.labels)
        out[key] = out.get(key, 0.0) + s.value  # summed over fairness_id / priority
    return out


def _histograms_by_objective(fam: MetricFamily | None) -> dict[ObjectiveKey, Histogram]:
    """Histograms per (model, target), summed over the other labels (same buckets per family)."""
    return histograms_by(fam, _objective)


def _attribute_running(running: dict[ObjectiveKey, float], pairs: set[ObjectiveKey]) -> dict[ObjectiveKey, float]:
    """Running requests per model pair. The legacy generations label them by ``model_name`` only: such a value
    goes to the model's pair when it has exactly one target, else it stays on ``(model, "")`` (copying it to
    every pair would count it once per target)."""
    out = {k: v for k, v in running.items() if k[1]}
    for (model, target), value in running.items():
        if target:
            continue
        targets = [pair for pair in pairs if pair[0] == model and pair[1]]
        out[targets[0] if len(targets) == 1 and targets[0] not in out else (model, "")] = value
    return out


def objective_stats(families: Mapping[str, MetricFamily]) -> list[EppObjectiveStats]:
    """Requests, errors, latency and token histograms, TTFT by streaming and running requests per model pair."""
    requests = _sum_by_objective(_pick(families, "requests_total"))
    running = _sum_by_objective(_pick(families, "running_requests"))
    errors: dict[ObjectiveKey, dict[str, float]] = {}
    err_fam = _pick(families, "request_errors_total")
    for s in err_fam.samples if err_fam is not None else []:
        if s.name.endswith("_created"):
            continue
        per = errors.setdefault(_objective(s.labels), {})
        code = s.labels.get("error_code", "unknown")
        per[code] = per.get(code, 0.0) + s.value
    histograms = {field: _histograms_by_objective(_pick(families, field)) for field in OBJECTIVE_HISTOGRAMS}
    ttft: dict[ObjectiveKey, dict[str, Histogram]] = {}
    by_streaming = histograms_by(
        _pick(families, "request_ttft_seconds"), lambda labels: (_objective(labels), labels.get("streaming", ""))
    )
    for (objective, streaming), hist in by_streaming.items():
        ttft.setdefault(objective, {})[streaming] = hist
    pairs = {*requests, *errors, *ttft, *(k for per in histograms.values() for k in per)}
    running = _attribute_running(running, pairs)
    keys = sorted({*pairs, *running})
    return [
        EppObjectiveStats(
            model_name=model,
            target_model_name=target,
            requests_total=requests.get((model, target)),
            request_errors_total=errors.get((model, target), {}),
            request_ttft_seconds=ttft.get((model, target), {}),
            running_requests=running.get((model, target)),
            **{field: per.get((model, target)) for field, per in histograms.items()},
        )
        for model, target in keys
    ]


def pool_stats(families: Mapping[str, MetricFamily]) -> list[EppPoolStats]:
    """Per pool: averages and standard deviations across endpoints, ready endpoints, queue per endpoint/pod."""
    pools: dict[str, dict[str, object]] = {}
    for field in POOL_GAUGES:
        fam = _pick(families, field)
        for s in fam.samples if fam is not None else []:
            pools.setdefault(s.labels.get("name", ""), {})[field] = s.value
    fam = _pick(families, "endpoint_queue_size")
    for s in fam.samples if fam is not None else []:
        endpoint = s.labels.get("model_server_endpoint") or s.labels.get("model_server_pod", "")
        per = pools.setdefault(s.labels.get("name", ""), {}).setdefault("endpoint_queue_size", {})
        assert isinstance(per, dict)
        per[endpoint] = s.value
    return [EppPoolStats(pool=pool, **values) for pool, values in sorted(pools.items())]  # type: ignore[arg-type]


def _whole(fam: MetricFamily | None) -> Histogram | None:
    """The family as one histogram, every label set summed (``histograms_by`` under a single key)."""
    return histograms_by(fam, lambda labels: ()).get(())


def scheduler_stats(families: Mapping[str, MetricFamily]) -> tuple[Histogram | None, dict[str, float], float | None]:
    """(scheduler e2e latency, scheduling attempts by status, flow-control queue size)."""
    latency = _whole(_pick(families, "scheduler_e2e_duration_seconds"))
    attempts: dict[str, float] = {}
    fam = _pick(families, "scheduler_attempts_total")
    for s in fam.samples if fam is not None else []:
        if s.name.endswith("_created"):
            continue
        status = s.labels.get("status", "unknown")
        attempts[status] = attempts.get(status, 0.0) + s.value
    fam = _pick(families, "flow_control_queue_size")
    flow = sum(s.value for s in fam.samples) if fam is not None else None
    return latency, attempts, flow


def _plugin(labels: Mapping[str, str]) -> tuple[str, str]:
    return labels.get("plugin_type", ""), labels.get("plugin_name", "")


def prefix_indexer_stats(families: Mapping[str, MetricFamily]) -> list[EppPrefixIndexerStats]:
    """Cache-aware routing per prefix-cache plugin: hit ratio (histogram and its mean), hit bytes, indexer size.

    The GIE-era ``inference_extension_prefix_indexer_*`` twins are unlabelled: one indexer with empty plugin labels.
    """
    ratio = histograms_by(_pick(families, "prefix_indexer_hit_ratio"), _plugin)
    hit_bytes = histograms_by(_pick(families, "prefix_indexer_hit_bytes"), _plugin)
    size: dict[tuple[str, str], float] = {}
    fam = _pick(families, "prefix_indexer_size")
    for s in fam.samples if fam is not None else []:
        size[_plugin(s.labels)] = size.get(_plugin(s.labels), 0.0) + s.value
    return [
        EppPrefixIndexerStats(
            plugin_type=plugin_type,
            plugin_name=plugin_name,
            prefix_indexer_hit_ratio=ratio.get((plugin_type, plugin_name)),
            prefix_indexer_hit_ratio_mean=_mean(ratio.get((plugin_type, plugin_name))),
            prefix_indexer_hit_bytes=hit_bytes.get((plugin_type, plugin_name)),
            prefix_indexer_size=size.get((plugin_type, plugin_name)),
        )
        for plugin_type, plugin_name in sorted({*ratio, *hit_bytes, *size})
    ]


def _mean(hist: Histogram | None) -> float | None:
    """sum / count of a histogram; None when it has no observation."""
    return hist.sum / hist.count if hist is not None and hist.count > 0 else None


def plugin_stats(families: Mapping[str, MetricFamily]) -> list[EppPluginStats]:
    """Plugin latency per (extension point, plugin type, plugin name)."""
    durations = histograms_by(
        _pick(families, "plugin_duration_seconds"),
        lambda labels: (labels.get("extension_point", ""), *_plugin(labels)),
    )
    return [
        EppPluginStats(extension_point=point, plugin_type=kind, plugin_name=name, plugin_duration_seconds=hist)
        for (point, kind, name), hist in sorted(durations.items())
    ]


def snapshot_fields(families: Mapping[str, MetricFamily]) -> dict[str, Any]:
    """Every metric-bearing field of an `EppSnapshot` from one scrape's families (``EppSnapshot(**…)``)."""
    latency, attempts, flow = scheduler_stats(families)
    return {
        "naming": detect_naming(families),
        "objectives": objective_stats(families),
        "pools": pool_stats(families),
        "prefix_indexers": prefix_indexer_stats(families),
        "plugins": plugin_stats(families),
        "scheduler_e2e_duration_seconds": latency,
        "scheduler_attempts_total": attempts,
        "flow_control_queue_size": flow,
        "request_processing_duration_seconds": _whole(_pick(families, "request_processing_duration_seconds")),
        "response_processing_duration_seconds": _whole(_pick(families, "response_processing_duration_seconds")),
    }


def auth_failure_reason(status: int) -> str:
    """What to fix when the EPP's authenticated ``/metrics`` refuses a scrape."""
    if status == 401:
        return (
            "unauthorized: the bearer token was missing or rejected by TokenReview; mount a valid "
            "service-account token (INFERWATCH_EPP_TOKEN_FILE)"
        )
    if status == 403:
        return (
            "forbidden: the scraper's service account lacks RBAC for nonResourceURLs ['/metrics'] "
            "verb get; bind a ClusterRole granting it"
        )
    if status == 500:
        return (
            "server_error: the EPP could not review the token; its service account likely lacks "
            "system:auth-delegator (TokenReview/SubjectAccessReview RBAC, llm-d-router#2370)"
        )
    return f"http_{status}"
