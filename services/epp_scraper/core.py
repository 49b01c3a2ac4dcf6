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
from inferwatch.contracts.epp import EppNaming, EppObjectiveStats, EppPoolStats
from inferwatch.shared.exposition import MetricFamily, histograms_by

NEW_PREFIXES = ("llm_d_epp_", "llm_d_router_epp_")

# quantity → candidate family names, newest first
CANDIDATES: dict[str, tuple[str, ...]] = {
    "requests": (
        "llm_d_epp_request",
        "llm_d_router_epp_request",
        "inference_objective_request",
        "inference_model_request",
    ),
    "errors": (
        "llm_d_epp_request_error",
        "llm_d_router_epp_request_error",
        "inference_objective_request_error",
        "inference_model_request_error",
    ),
    "duration": (
        "llm_d_epp_request_duration_seconds",
        "llm_d_router_epp_request_duration_seconds",
        "inference_objective_request_duration_seconds",
        "inference_model_request_duration_seconds",
    ),
    "input_tokens": (
        "llm_d_epp_request_input_tokens",
        "llm_d_router_epp_request_input_tokens",
        "inference_objective_input_tokens",
        "inference_model_input_tokens",
    ),
    "output_tokens": (
        "llm_d_epp_request_output_tokens",
        "llm_d_router_epp_request_output_tokens",
        "inference_objective_output_tokens",
        "inference_model_output_tokens",
    ),
    "running": (
        "llm_d_epp_request_running",
        "llm_d_router_epp_request_running",
        "inference_objective_running_requests",
        "inference_model_running_requests",
    ),
    "kv_cache": (
        "llm_d_epp_average_kv_cache_utilization",
        "llm_d_router_epp_average_kv_cache_utilization",
        "inference_pool_average_kv_cache_utilization",
    ),
    "queue": (
        "llm_d_epp_average_queue_size",
        "llm_d_router_epp_average_queue_size",
        "inference_pool_average_queue_size",
    ),
    "ready": ("llm_d_epp_ready_endpoints", "llm_d_router_epp_ready_endpoints", "inference_pool_ready_pods"),
    "endpoint_queue": (
        "llm_d_epp_per_endpoint_queue_size",
        "llm_d_router_epp_per_endpoint_queue_size",
        "inference_pool_per_pod_queue_size",
    ),
    "scheduler_e2e": (
        "llm_d_epp_scheduler_e2e_duration_seconds",
        "llm_d_router_epp_scheduler_e2e_duration_seconds",
        "inference_extension_scheduler_e2e_duration_seconds",
    ),
    "scheduler_attempts": (
        "llm_d_epp_scheduler_attempts",
        "llm_d_router_epp_scheduler_attempts",
        "inference_extension_scheduler_attempts",
    ),
    "flow_control_queue": (
        "llm_d_epp_flow_control_queue_size",
        "llm_d_router_epp_flow_control_queue_size",
        "inference_extension_flow_control_queue_size",
    ),
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


def _pick(families: Mapping[str, MetricFamily], quantity: str) -> MetricFamily | None:
    for name in CANDIDATES[quantity]:
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
    requests = _sum_by_objective(_pick(families, "requests"))
    running = _sum_by_objective(_pick(families, "running"))
    errors: dict[ObjectiveKey, dict[str, float]] = {}
    err_fam = _pick(families, "errors")
    for s in err_fam.samples if err_fam is not None else []:
        if s.name.endswith("_created"):
            continue
        per = errors.setdefault(_objective(s.labels), {})
        code = s.labels.get("error_code", "unknown")
        per[code] = per.get(code, 0.0) + s.value
    duration = _histograms_by_objective(_pick(families, "duration"))
    inputs = _histograms_by_objective(_pick(families, "input_tokens"))
    outputs = _histograms_by_objective(_pick(families, "output_tokens"))
    keys = sorted({*requests, *running, *errors, *duration, *inputs, *outputs})
    # ``running`` is labelled by model_name only in the legacy generations: match it on the model.
    running_by_model = {m: v for (m, t), v in running.items() if t == ""}
    return [
        EppObjectiveStats(
            model_name=model,
            target_model_name=target,
            requests_total=requests.get((model, target)),
            errors_total=errors.get((model, target), {}),
            request_duration_seconds=duration.get((model, target)),
            input_tokens=inputs.get((model, target)),
            output_tokens=outputs.get((model, target)),
            running_requests=running.get((model, target), running_by_model.get(model) if target else None),
        )
        for model, target in keys
    ]


def pool_stats(families: Mapping[str, MetricFamily]) -> list[EppPoolStats]:
    """Per pool: average KV-cache utilisation and queue size, ready endpoints, queue per endpoint/pod."""
    pools: dict[str, dict[str, object]] = {}
    for quantity, field in (
        ("kv_cache", "average_kv_cache_utilization_ratio"),
        ("queue", "average_queue_size"),
        ("ready", "ready_endpoints"),
    ):
        fam = _pick(families, quantity)
        for s in fam.samples if fam is not None else []:
            pools.setdefault(s.labels.get("name", ""), {})[field] = s.value
    fam = _pick(families, "endpoint_queue")
    for s in fam.samples if fam is not None else []:
        endpoint = s.labels.get("model_server_endpoint") or s.labels.get("model_server_pod", "")
        per = pools.setdefault(s.labels.get("name", ""), {}).setdefault("per_endpoint_queue_size", {})
        assert isinstance(per, dict)
        per[endpoint] = s.value
    return [EppPoolStats(pool=pool, **values) for pool, values in sorted(pools.items())]  # type: ignore[arg-type]


def scheduler_stats(families: Mapping[str, MetricFamily]) -> tuple[Histogram | None, dict[str, float], float | None]:
    """(scheduler e2e latency, scheduling attempts by status, flow-control queue size)."""
    e2e = _histograms_by_objective(_pick(families, "scheduler_e2e"))
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
    fam = _pick(families, "scheduler_attempts")
    for s in fam.samples if fam is not None else []:
        if s.name.endswith("_created"):
            continue
        status = s.labels.get("status", "unknown")
        attempts[status] = attempts.get(status, 0.0) + s.value
    fam = _pick(families, "flow_control_queue")
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
