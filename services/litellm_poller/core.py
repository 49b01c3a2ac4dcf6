"""Pure reading of a LiteLLM proxy's API and Prometheus families into `contracts.litellm` shapes.

This module is the one place that knows LiteLLM's quirks across versions (reference: LiteLLM 1.60 → 1.109):
renamed families (``litellm_requests_metric`` → ``litellm_proxy_total_requests_metric``,
``litellm_total_tokens`` → ``litellm_total_tokens_metric``, ``litellm_remaining_requests`` →
``litellm_remaining_requests_metric``), the latched cooldown series of ``litellm_deployment_state``, the
licence-gated exposition (only ``litellm_not_a_premium_user_metric``), internal health-check series and
``"None"``/``""`` label values.  API keys, teams and end users are aggregated away: usage is keyed by model group.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from inferwatch.contracts.base import Histogram
from inferwatch.contracts.catalog import ModelType
from inferwatch.contracts.litellm import MetricsMode, ModelRoute, ModelUsage, RouteStatus
from inferwatch.contracts.metrics import metric_fields
from inferwatch.shared.exposition import MetricFamily, histograms_by
from inferwatch.shared.http import strip_credentials

MODE_TYPES: dict[str, ModelType] = {
    "chat": "llm",
    "completion": "llm",
    "responses": "llm",
    "text_completion": "llm",
    "embedding": "embedding",
    "embeddings": "embedding",
    "rerank": "reranker",
    "reranker": "reranker",
    "image_generation": "image",
    "image_edit": "image",
    "image": "image",
    "audio_transcription": "audio",
    "audio_speech": "audio",
    "audio": "audio",
    "realtime": "audio",
}
# Name heuristics, checked in order when ``mode`` says nothing.
NAME_HINTS: tuple[tuple[ModelType, tuple[str, ...]], ...] = (
    ("reranker", ("rerank",)),
    ("embedding", ("embed", "bge-", "e5-", "gte-", "minilm", "nomic")),
    ("image", ("dall-e", "dalle", "stable-diffusion", "sdxl", "flux", "imagen", "gpt-image")),
    ("audio", ("whisper", "tts", "speech", "transcribe", "audio")),
    (
        "llm",
        (
            "gpt",
            "llama",
            "mistral",
            "mixtral",
            "qwen",
            "claude",
            "gemini",
            "gemma",
            "phi",
            "deepseek",
            "chat",
            "instruct",
            "command",
            "falcon",
            "yi-",
        ),
    ),
)

HEALTH_CHECK_KEY = "litellm-internal-health-check"
PREMIUM_GATE = "litellm_not_a_premium_user_metric"
NONE_VALUES = frozenset({"", "None", "none", "null"})

# Stable field → candidate family names (without ``_total``), newest first. The usage fields' names
# are their contract declarations (contracts.metrics); the others are read here only.
USAGE_SOURCES = {m.field: m.sources for m in metric_fields(ModelUsage)}
REQUESTS = USAGE_SOURCES["requests_total"]
FAILED = USAGE_SOURCES["errors_total"]
INPUT_TOKENS = USAGE_SOURCES["input_tokens_total"]
OUTPUT_TOKENS = USAGE_SOURCES["output_tokens_total"]
TOTAL_TOKENS = USAGE_SOURCES["tokens_total"]
SPEND = USAGE_SOURCES["spend_usd_total"]
FALLBACK_OK = ("litellm_deployment_successful_fallbacks",)
FALLBACK_FAILED = ("litellm_deployment_failed_fallbacks",)
COOLDOWNS = ("litellm_deployment_cooled_down",)
DEPLOYMENT_FAILURES = ("litellm_deployment_failure_responses",)
REMAINING_REQUESTS = ("litellm_remaining_requests_metric", "litellm_remaining_requests")
REMAINING_TOKENS = ("litellm_remaining_tokens_metric", "litellm_remaining_tokens")
STATE = ("litellm_deployment_state",)
IN_FLIGHT = ("litellm_in_flight_requests",)
HISTOGRAMS = {m.field: m.sources for m in metric_fields(ModelUsage) if m.type == "histogram"}
COUNTER_GROUPS = (
    REQUESTS,
    FAILED,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    TOTAL_TOKENS,
    SPEND,
    FALLBACK_OK,
    FALLBACK_FAILED,
    COOLDOWNS,
    DEPLOYMENT_FAILURES,
)
GAUGE_GROUPS = (REMAINING_REQUESTS, REMAINING_TOKENS, STATE, IN_FLIGHT)
STATE_NAMES: dict[int, RouteStatus] = {0: "healthy", 1: "partial_outage", 2: "outage"}


def wanted_families() -> frozenset[str]:
    """Every family name (with and without ``_total``) the poller reads: the parser keeps only these."""
    names: set[str] = {PREMIUM_GATE, PREMIUM_GATE + "_total"}
    for group in (*COUNTER_GROUPS, *HISTOGRAMS.values()):
        for name in group:
            names.update((name, name + "_total"))
    for group in GAUGE_GROUPS:
        names.update(group)
    return frozenset(names)


WANTED = wanted_families()


# ---- model classification --------------------------------------------------------------------


def classify_model(mode: object, *names: str) -> ModelType:
    """``llm`` / ``embedding`` / ``reranker`` / ``image`` / ``audio`` / ``other``: from ``mode``, then names."""
    if isinstance(mode, str) and mode.strip().lower() in MODE_TYPES:
        return MODE_TYPES[mode.strip().lower()]
    for name in names:
        lowered = name.lower()
        for model_type, hints in NAME_HINTS:
            if any(h in lowered for h in hints):
                return model_type
    return "other"


# ---- JSON endpoints --------------------------------------------------------------------------


def _num(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    try:
        as_float = float(value)
    except OverflowError:  # a JSON integer beyond float range (msgspec decodes big ints exactly)
        return 0.0
    return as_float if math.isfinite(as_float) else 0.0


def _int(value: object) -> int:
    return int(_num(value))


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _provider(params: Mapping[str, Any], info: Mapping[str, Any]) -> str:
    provider = info.get("litellm_provider") or params.get("custom_llm_provider")
    if isinstance(provider, str) and provider:
        return provider
    model = params.get("model")
    if isinstance(model, str) and "/" in model:
        return model.split("/", 1)[0]
    return ""


def parse_model_info(raw: object) -> list[ModelRoute]:
    """``/model/info`` (``{"data": [...]}``) → one `ModelRoute` per deployment; unknown fields are ignored.

    A row without ``model_info`` (or without an ``id``) still gives a route: its id falls back to
    ``<model_name>#<index>`` and its type to the name heuristics.

    Raises:
        ValueError: not a ``{"data": [...]}`` object.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), list):
        raise ValueError("/model/info: no data list")
    routes: list[ModelRoute] = []
    for index, row in enumerate(raw["data"]):
        if not isinstance(row, dict) or not isinstance(row.get("model_name"), str):
            continue
        group = row["model_name"]
        params = _dict(row.get("litellm_params"))
        info = _dict(row.get("model_info"))
        model = _str(params.get("model"))
        deployment_id = _str(info.get("id")) or f"{group}#{index}"
        mode = _str(info.get("mode"))
        api_base = _str(params.get("api_base"))
        routes.append(
            ModelRoute(
                model_group=group,
                deployment_id=deployment_id,
                model_type=classify_model(mode, group, model),
                provider=_provider(params, info),
                api_base=strip_credentials(api_base) if api_base else "",
                input_cost_per_token=_num(info.get("input_cost_per_token")),
                output_cost_per_token=_num(info.get("output_cost_per_token")),
                max_tokens=_int(info.get("max_tokens")),
                mode=mode,
                max_input_tokens=_int(info.get("max_input_tokens")),
                max_output_tokens=_int(info.get("max_output_tokens")),
            )
        )
    return routes


def parse_model_group_info(raw: object) -> dict[str, dict[str, Any]]:
    """``/model_group/info`` → ``{model_group: {mode, providers, input/output cost, max tokens}}``.

    Raises:
        ValueError: not a ``{"data": [...]}`` object.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), list):
        raise ValueError("/model_group/info: no data list")
    out: dict[str, dict[str, Any]] = {}
    for row in raw["data"]:
        if isinstance(row, dict) and isinstance(row.get("model_group"), str):
            raw_providers = row.get("providers")
            providers = raw_providers if isinstance(raw_providers, list) else []
            out[row["model_group"]] = {
                "mode": row.get("mode") if isinstance(row.get("mode"), str) else "",
                "providers": [p for p in providers if isinstance(p, str)],
                "input_cost_per_token": _num(row.get("input_cost_per_token")),
                "output_cost_per_token": _num(row.get("output_cost_per_token")),
                "max_input_tokens": _int(row.get("max_input_tokens")),
                "max_output_tokens": _int(row.get("max_output_tokens")),
            }
    return out


def merge_group_info(routes: list[ModelRoute], groups: Mapping[str, Mapping[str, Any]]) -> list[ModelRoute]:
    """Fill what ``/model/info`` left empty (mode, type, costs, provider) from ``/model_group/info``."""
    out = []
    for r in routes:
        g = groups.get(r.model_group)
        if g is None:
            out.append(r)
            continue
        mode = r.mode or g["mode"]
        out.append(
            msgspec.structs.replace(
                r,
                mode=mode,
                model_type=r.model_type if r.mode else classify_model(mode, r.model_group),
                provider=r.provider or (g["providers"][0] if g["providers"] else ""),
                input_cost_per_token=r.input_cost_per_token or g["input_cost_per_token"],
                output_cost_per_token=r.output_cost_per_token or g["output_cost_per_token"],
                max_input_tokens=r.max_input_tokens or g["max_input_tokens"],
                max_output_tokens=r.max_output_tokens or g["max_output_tokens"],
            )
        )
    return out


@dataclass(frozen=True)
class Readiness:
    """``/health/readiness`` (or ``/details``)."""

    ready: bool
    db_status: str = ""
    version: str = ""
    callbacks: tuple[str, ...] = ()


def parse_readiness(raw: object) -> Readiness:
    """``{"status": "healthy", "db": "Not connected", ["litellm_version", "success_callbacks"]}``.

    Raises:
        ValueError: not an object with a ``status``.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("status"), str):
        raise ValueError("/health/readiness: no status")
    callbacks = raw.get("success_callbacks")
    return Readiness(
        ready=raw["status"] == "healthy",
        db_status=str(raw.get("db") or ""),
        version=str(raw.get("litellm_version") or ""),
        callbacks=tuple(c for c in callbacks if isinstance(c, str)) if isinstance(callbacks, list) else (),
    )


def parse_backlog(raw: object) -> dict[str, float]:
    """``/health/backlog`` → ``in_flight_requests``, ``queued_requests``, ``rejected_requests`` (those present).

    Raises:
        ValueError: not an object.
    """
    if not isinstance(raw, dict):
        raise ValueError("/health/backlog: not an object")
    out: dict[str, float] = {}
    for k in ("in_flight_requests", "queued_requests", "rejected_requests"):
        v = raw.get(k)
        if isinstance(v, int | float) and not isinstance(v, bool):
            with contextlib.suppress(OverflowError):  # an integer beyond float range is left out
                out[k] = float(v)
    return out


def parse_health(raw: object) -> dict[str, RouteStatus]:
    """``/health`` → ``{model_id: "healthy"|"outage"}`` from ``healthy_endpoints``/``unhealthy_endpoints``.

    Raises:
        ValueError: not the ``/health`` object.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("healthy_endpoints"), list):
        raise ValueError("/health: no healthy_endpoints")
    out: dict[str, RouteStatus] = {}
    lists: tuple[tuple[str, RouteStatus], ...] = (("healthy_endpoints", "healthy"), ("unhealthy_endpoints", "outage"))
    for key, status in lists:
        items = raw.get(key)
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get("model_id"), str):
                out[item["model_id"]] = status
    return out


def error_label(outcome: str, status: int | None) -> str:
    """A bounded error label: ``http_401``, ``http_429``, ``http_500``… for answers, the transport outcome otherwise."""
    if status is not None and 100 <= status <= 599:
        return f"http_{status}"
    return outcome


ERROR_HINTS = {
    400: "LiteLLM answers 400 no_db_connection to an unknown key when it has no database: check the key",
    401: "missing or malformed key: set INFERWATCH_LITELLM_KEY (or _FILE) to a key with access",
    403: "the key lacks access to this route",
    404: "route absent in this LiteLLM version or configuration",
    429: "rate-limited by the proxy: backing off as Retry-After says",
}


def error_hint(status: int | None) -> str:
    """A human hint for a failed call (never holds a key)."""
    if status is None:
        return "proxy unreachable"
    return ERROR_HINTS.get(status, "proxy error" if status >= 500 else "")


# ---- Prometheus ------------------------------------------------------------------------------


def metrics_mode(families: Mapping[str, MetricFamily]) -> MetricsMode:
    """``prometheus`` when LiteLLM families are exposed, ``licence_gated`` when only the premium marker is,
    ``empty`` when the callback exposes nothing of LiteLLM."""
    litellm = [n for n in families if n.startswith("litellm_") and families[n].samples]
    if any(not n.startswith(PREMIUM_GATE) for n in litellm):
        return "prometheus"
    if litellm:
        return "licence_gated"
    return "empty"


def _family(families: Mapping[str, MetricFamily], candidates: Iterable[str]) -> MetricFamily | None:
    for name in candidates:
        for key in (name, name + "_total"):  # typed, or untyped ``*_total`` (no TYPE line, or a mis-declared one)
            fam = families.get(key)
            if fam is not None and fam.samples:
                return fam
    return None


def _label(labels: Mapping[str, str], *names: str) -> str:
    for name in names:
        value = labels.get(name, "")
        if value not in NONE_VALUES:
            return value
    return ""


def _internal(labels: Mapping[str, str]) -> bool:
    return labels.get("hashed_api_key") == HEALTH_CHECK_KEY or labels.get("api_key_alias") == HEALTH_CHECK_KEY


def _group_of(labels: Mapping[str, str]) -> str:
    return _label(labels, "requested_model", "model_group", "model")


def _counter_by_group(fam: MetricFamily | None, sub: str = "") -> dict[str, dict[str, float]]:
    """``{group: {sub-label value: sum}}`` over the counter's ``_total`` samples (internal checks skipped)."""
    out: dict[str, dict[str, float]] = {}
    if fam is None:
        return out
    for s in fam.samples:
        if not s.name.endswith("_total") or _internal(s.labels) or not math.isfinite(s.value):
            continue
        group = _group_of(s.labels)
        if not group:
            continue
        key = s.labels.get(sub, "") if sub else ""
        bucket = out.setdefault(group, {})
        bucket[key] = bucket.get(key, 0.0) + s.value
    return out


def _histograms_by_group(fam: MetricFamily | None) -> dict[str, Histogram]:
    return histograms_by(fam, lambda labels: None if _internal(labels) else (_group_of(labels) or None))


def status_class(code: str) -> str:
    """``200`` → ``2xx``; ``None`` (refused by the router's cooldown before any upstream call) → ``none``."""
    return f"{code[0]}xx" if len(code) == 3 and code.isdigit() else "none"


def usage_by_group(families: Mapping[str, MetricFamily]) -> list[ModelUsage]:
    """One `ModelUsage` per model group, summed over keys, teams, users and deployments."""
    fields: dict[str, dict[str, Any]] = {}

    def put(group: str, name: str, value: object) -> None:
        fields.setdefault(group, {})[name] = value

    requests_fam = _family(families, REQUESTS[:1])
    if requests_fam is not None:
        for group, by_code in _counter_by_group(requests_fam, "status_code").items():
            classes: dict[str, float] = {}
            for code, value in by_code.items():
                classes[status_class(code)] = classes.get(status_class(code), 0.0) + value
            put(group, "requests_total", classes)
    else:  # before the proxy_* families: total and failed, no status code
        total = _counter_by_group(_family(families, REQUESTS[1:]))
        failed = _counter_by_group(_family(families, FAILED[1:]))
        for group, values in total.items():
            bad = sum(failed.get(group, {}).values())
            put(group, "requests_total", {"success": max(0.0, sum(values.values()) - bad), "failure": bad})
    for group, by_class in _counter_by_group(_family(families, FAILED), "exception_class").items():
        put(group, "errors_total", {k or "unknown": v for k, v in by_class.items()})
    counters: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("input_tokens_total", INPUT_TOKENS),
        ("output_tokens_total", OUTPUT_TOKENS),
        ("tokens_total", TOTAL_TOKENS),
        ("spend_usd_total", SPEND),
        ("fallbacks_ok_total", FALLBACK_OK),
        ("fallbacks_failed_total", FALLBACK_FAILED),
    )
    for name, candidates in counters:
        for group, values in _counter_by_group(_family(families, candidates)).items():
            put(group, name, sum(values.values()))
    for name, candidates in HISTOGRAMS.items():
        for group, hist in _histograms_by_group(_family(families, candidates)).items():
            put(group, name, hist)
    return [ModelUsage(model_group=g, **values) for g, values in sorted(fields.items())]


@dataclass
class DeploymentMetrics:
    """What ``/metrics/`` says about one deployment (keyed by ``model_id``)."""

    state: int | None = None
    latched: bool = False
    cooldowns: float | None = None
    failures: float | None = None
    remaining_requests: float | None = None
    remaining_tokens: float | None = None


def deployment_metrics(
    families: Mapping[str, MetricFamily], groups_by_id: Mapping[str, str]
) -> dict[str, DeploymentMetrics]:
    """Per-deployment state, cooldowns, failures and remaining rate limits.

    ``litellm_deployment_state`` has two series per deployment: the deployment's own (``litellm_model_name`` =
    bare model; 0/1 follow failures and successes) and one named after the model group that the cooldown sets
    to 2 and never resets.  The own series wins; a group-named 2 only counts while the own series is not 0.
    """
    out: dict[str, DeploymentMetrics] = {}
    fam = _family(families, STATE)
    own: dict[str, float] = {}
    latched: dict[str, float] = {}
    for s in fam.samples if fam else []:
        model_id = s.labels.get("model_id", "")
        if model_id in NONE_VALUES:
            continue  # health-probe series
        if s.labels.get("litellm_model_name") == groups_by_id.get(model_id):
            latched[model_id] = max(latched.get(model_id, 0.0), s.value)
        else:
            own[model_id] = max(own.get(model_id, 0.0), s.value)
    for model_id in own.keys() | latched.keys():
        d = out.setdefault(model_id, DeploymentMetrics())
        mine, group = own.get(model_id), latched.get(model_id, 0.0)
        if mine is None:
            d.state = int(min(max(group, 0), 2))  # group name == bare model name: one series only
        elif mine == 0:
            d.state, d.latched = 0, group >= 2
        else:
            d.state = 2 if group >= 2 else int(min(max(mine, 0), 2))
    per_deployment: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("cooldowns", COOLDOWNS),
        ("failures", DEPLOYMENT_FAILURES),
    )
    for attr, candidates in per_deployment:
        fam = _family(families, candidates)
        for s in fam.samples if fam else []:
            model_id = s.labels.get("model_id", "")
            if s.name.endswith("_total") and model_id not in NONE_VALUES and not _internal(s.labels):
                d = out.setdefault(model_id, DeploymentMetrics())
                setattr(d, attr, (getattr(d, attr) or 0.0) + s.value)
    remaining: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("remaining_requests", REMAINING_REQUESTS),
        ("remaining_tokens", REMAINING_TOKENS),
    )
    for attr, candidates in remaining:
        fam = _family(families, candidates)
        for s in fam.samples if fam else []:
            model_id = s.labels.get("model_id", "")
            if model_id in NONE_VALUES or not math.isfinite(s.value):
                continue
            d = out.setdefault(model_id, DeploymentMetrics())
            current = getattr(d, attr)
            setattr(d, attr, s.value if current is None else min(current, s.value))
    return out


def in_flight(families: Mapping[str, MetricFamily]) -> float | None:
    """``litellm_in_flight_requests`` summed over workers, if exposed."""
    fam = _family(families, IN_FLIGHT)
    return sum(s.value for s in fam.samples) if fam else None


def apply_deployment_state(
    routes: list[ModelRoute], metrics: Mapping[str, DeploymentMetrics], health: Mapping[str, RouteStatus] | None = None
) -> list[ModelRoute]:
    """Set each route's status from ``/health`` (when polled) or the state gauge, and its per-deployment counts."""
    out = []
    for r in routes:
        d = metrics.get(r.deployment_id, DeploymentMetrics())
        status: RouteStatus = "unknown"
        if health and r.deployment_id in health:
            status = health[r.deployment_id]
        elif d.state is not None:
            status = STATE_NAMES.get(d.state, "unknown")
        out.append(
            msgspec.structs.replace(
                r,
                status=status,
                state_latched=d.latched,
                cooldowns_total=d.cooldowns,
                failures_total=d.failures,
                remaining_requests=d.remaining_requests,
                remaining_tokens=d.remaining_tokens,
            )
        )
    return out
