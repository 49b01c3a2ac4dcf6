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
from typing import get_args

from inferwatch.contracts.base import Histogram
from inferwatch.contracts.epp import EppNaming, EppObjectiveStats, EppPoolStats, EppSnapshot
from inferwatch.contracts.metrics import metric_fields
from inferwatch.shared.exposition import MetricFamily, histograms_by

NEW_PREFIXES = ("llm_d_epp_", "llm_d_router_epp_")

# field → candidate family names, newest first: the contracts' metric fields (contracts.metrics)
CANDIDATES: dict[str, tuple[str, ...]] = {
    m.field: m.sources for struct in (EppObjectiveStats, EppPoolStats, EppSnapshot) for m in metric_fields(struct)
}
WANTED: frozenset[str] = frozenset(name for names in CANDIDATES.values() for name in names)
# newest first, as `EppNaming` lists them
GENERATIONS: tuple[EppNaming, ...] = tuple(naming for naming in get_args(EppNaming) if naming)

ObjectiveKey = tuple[str, str]


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


def objective_stats(families: Mapping[str, MetricFamily]) -> list[EppObjectiveStats]:
    """Request rate, errors, latency, token histograms and running requests per (model, target model)."""
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
    duration = _histograms_by_objective(_pick(families, "request_duration_seconds"))
    inputs = _histograms_by_objective(_pick(families, "request_input_tokens"))
    outputs = _histograms_by_objective(_pick(families, "request_output_tokens"))
    keys = sorted({*requests, *running, *errors, *duration, *inputs, *outputs})
    # ``running`` is labelled by model_name only in the legacy generations: match it on the model.
    running_by_model = {m: v for (m, t), v in running.items() if t == ""}
    return [
        EppObjectiveStats(
            model_name=model,
            target_model_name=target,
            requests_total=requests.get((model, target)),
            request_errors_total=errors.get((model, target), {}),
            request_duration_seconds=duration.get((model, target)),
            request_input_tokens=inputs.get((model, target)),
            request_output_tokens=outputs.get((model, target)),
            running_requests=running.get((model, target), running_by_model.get(model) if target else None),
        )
        for model, target in keys
    ]


def pool_stats(families: Mapping[str, MetricFamily]) -> list[EppPoolStats]:
    """Per pool: average KV-cache utilisation and queue size, ready endpoints, queue per endpoint/pod."""
    pools: dict[str, dict[str, object]] = {}
    for field in ("pool_average_kv_cache_utilization_ratio", "pool_average_queue_size", "pool_ready_endpoints"):
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


def scheduler_stats(families: Mapping[str, MetricFamily]) -> tuple[Histogram | None, dict[str, float], float | None]:
    """(scheduler e2e latency, scheduling attempts by status, flow-control queue size)."""
    e2e = _histograms_by_objective(_pick(families, "scheduler_e2e_duration_seconds"))
    latency = None
    if e2e:
        merged: dict[float, float] = {}
        for h in e2e.values():
            for le, c in h.buckets:
                merged[le] = merged.get(le, 0.0) + c
        latency = Histogram(
            buckets=sorted(merged.items()),
            sum=sum(h.sum for h in e2e.values()),
            count=sum(h.count for h in e2e.values()),
        )
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
