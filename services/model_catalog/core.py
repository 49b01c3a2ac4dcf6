"""Pure functions of the model catalog: merge model sightings into ``CatalogEntry``s, read HF metadata.

A *sighting* is one place a model was seen (a vLLM ``/v1/models`` card, a LiteLLM route, a container's
served model). Sightings of the same name merge into one entry; Hugging Face metadata (from
``GET {HF_ENDPOINT}/api/models/{repo_id}``) fills parameter count, quantization, pipeline tag, licence and
gated/private.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from inferwatch.contracts.catalog import CatalogEntry, ModelType, Provider
from inferwatch.contracts.docker import DockerHostSnapshot
from inferwatch.contracts.litellm import LitellmProxySnapshot, ModelRoute
from inferwatch.contracts.vllm import VllmInstanceSnapshot

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# order matters: the first match wins
_QUANT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("gguf", re.compile(r"gguf", re.I)),
    ("awq", re.compile(r"(^|[^a-z])awq([^a-z]|$)", re.I)),
    ("gptq", re.compile(r"gptq", re.I)),
    ("fp8", re.compile(r"fp8|float8", re.I)),
    ("bnb-4bit", re.compile(r"bnb|bitsandbytes", re.I)),
    ("int8", re.compile(r"(^|[^a-z])(int8|w8a8)([^a-z]|$)", re.I)),
    ("int4", re.compile(r"(^|[^a-z])(int4|w4a16)([^a-z]|$)", re.I)),
)


@dataclass(frozen=True)
class Sighting:
    """One place a model was seen.

    Attributes:
        name: the served name clients use.
        provider: ``vllm``, ``litellm`` or ``docker``.
        model_id: HF repo id or path, when known.
        endpoint: base URL to call it at, when known.
        model_type: ``llm``/``embedding``/… when the source says.
        max_context: context length, 0 when unknown.
        available: served by a ready backend now.
        seen_at: Unix seconds.
        quantization: as the source says (vLLM ``--quantization``), ``""`` otherwise.
    """

    name: str
    provider: Provider
    model_id: str = ""
    endpoint: str = ""
    model_type: ModelType | Literal[""] = ""
    max_context: int = 0
    available: bool = False
    seen_at: float = 0.0
    quantization: str = ""


def is_repo_id(model_id: str) -> bool:
    """Whether ``model_id`` looks like a Hugging Face repo id (``org/name``), not a local path."""
    return bool(_REPO_ID.match(model_id)) and not model_id.startswith((".", "/"))


def quantization_from_text(*texts: str) -> str:
    """AWQ/GPTQ/FP8/GGUF/… named in a config value, a tag or a file name; ``""`` when none."""
    for label, pattern in _QUANT_PATTERNS:
        if any(pattern.search(t) for t in texts if t):
            return label
    return ""


def merge(sightings: Iterable[Sighting], previous: Mapping[str, CatalogEntry] | None = None) -> dict[str, CatalogEntry]:
    """One entry per model name; first/last seen kept across merges via ``previous``."""
    grouped: dict[str, list[Sighting]] = {}
    for s in sightings:
        if s.name:
            grouped.setdefault(s.name, []).append(s)
    out: dict[str, CatalogEntry] = {}
    for name, group in sorted(grouped.items()):
        before = (previous or {}).get(name)
        model_id = next((s.model_id for s in group if is_repo_id(s.model_id)), "") or next(
            (s.model_id for s in group if s.model_id), ""
        )
        seen = [s.seen_at for s in group if s.seen_at]
        first = min([*seen, *([before.first_seen] if before and before.first_seen else [])], default=0.0)
        out[name] = CatalogEntry(
            name=name,
            model_id=model_id,
            model_type=next((s.model_type for s in group if s.model_type), before.model_type if before else "llm"),
            providers=sorted({s.provider for s in group}),
            endpoints=sorted({s.endpoint for s in group if s.endpoint}),
            max_context=max((s.max_context for s in group), default=0),
            quantization=next((s.quantization for s in group if s.quantization), "")
            or quantization_from_text(model_id, name)
            or (before.quantization if before else ""),
            parameter_count=before.parameter_count if before else 0,
            available=any(s.available for s in group),
            first_seen=first,
            last_seen=max(seen, default=before.last_seen if before else 0.0),
            hf_url=f"https://huggingface.co/{model_id}" if is_repo_id(model_id) else "",
            pipeline_tag=before.pipeline_tag if before else "",
            license=before.license if before else "",
            gated=before.gated if before else False,
        )
    return out


@dataclass(frozen=True)
class HfInfo:
    """What the catalog keeps from the HF model API."""

    parameter_count: int = 0
    quantization: str = ""
    pipeline_tag: str = ""
    license: str = ""
    gated: bool = False
    private: bool = False


def parse_hf_model(body: Mapping[str, Any]) -> HfInfo:
    """``GET /api/models/{repo_id}`` JSON → ``HfInfo`` (missing or odd fields are left empty)."""
    safetensors = body.get("safetensors") if isinstance(body.get("safetensors"), dict) else {}
    total = safetensors.get("total") if isinstance(safetensors, dict) else None
    if not isinstance(total, int):
        params = safetensors.get("parameters") if isinstance(safetensors, dict) else None
        total = sum(v for v in params.values() if isinstance(v, int)) if isinstance(params, dict) else 0
    config = body.get("config") if isinstance(body.get("config"), dict) else {}
    qconfig = config.get("quantization_config") if isinstance(config, dict) else None
    qmethod = str(qconfig.get("quant_method", "")) if isinstance(qconfig, dict) else ""
    tags = [str(t) for t in body.get("tags", []) if isinstance(t, str)] if isinstance(body.get("tags"), list) else []
    files = (
        [str(s.get("rfilename", "")) for s in body.get("siblings", []) if isinstance(s, dict)]
        if isinstance(body.get("siblings"), list)
        else []
    )
    card = body.get("cardData") if isinstance(body.get("cardData"), dict) else {}
    license_ = next((t.split(":", 1)[1] for t in tags if t.startswith("license:")), "") or str(
        (card or {}).get("license", "") or ""
    )
    gated = body.get("gated")
    return HfInfo(
        parameter_count=int(total or 0),
        quantization=quantization_from_text(qmethod) or quantization_from_text(*tags) or quantization_from_text(*files),
        pipeline_tag=str(body.get("pipeline_tag", "") or ""),
        license=license_,
        gated=bool(gated) and gated != "false",
        private=bool(body.get("private", False)),
    )


def enrich(entry: CatalogEntry, info: HfInfo) -> CatalogEntry:
    """``entry`` with HF metadata filled in (what the sightings said about quantization wins)."""
    import msgspec

    return msgspec.structs.replace(
        entry,
        parameter_count=info.parameter_count or entry.parameter_count,
        quantization=entry.quantization or info.quantization,
        pipeline_tag=info.pipeline_tag or entry.pipeline_tag,
        license=info.license or entry.license,
        gated=info.gated or info.private or entry.gated,
        model_type=(
            entry.model_type if entry.model_type != "llm" or not info.pipeline_tag else _type_of(info.pipeline_tag)
        ),
    )


def _type_of(pipeline_tag: str) -> ModelType:
    if pipeline_tag in ("feature-extraction", "sentence-similarity"):
        return "embedding"
    if pipeline_tag == "text-classification":
        return "reranker"
    if pipeline_tag in ("text-generation", "image-text-to-text", "text2text-generation"):
        return "llm"
    return "other"


# --------------------------------------------------------------------------------------------------------------
# Snapshots → sightings


def sightings_from_vllm(snap: VllmInstanceSnapshot) -> list[Sighting]:
    """One sighting per ``/v1/models`` card of a vLLM instance (``root`` is the HF id or path)."""
    available = snap.up and snap.status == "ready"
    return [
        Sighting(
            name=card.id,
            provider="vllm",
            model_id=card.root or card.parent,
            endpoint=snap.source,
            max_context=card.max_model_len,
            available=available,
            seen_at=snap.observed_at,
        )
        for card in snap.models
        if card.id
    ]


def sightings_from_litellm(snap: LitellmProxySnapshot) -> list[Sighting]:
    """One sighting per LiteLLM model group (its deployments merged): the proxy's URL is the endpoint."""
    by_group: dict[str, list[ModelRoute]] = {}
    for route in snap.routes:
        if route.model_group:
            by_group.setdefault(route.model_group, []).append(route)
    out = []
    for group, routes in sorted(by_group.items()):
        out.append(
            Sighting(
                name=group,
                provider="litellm",
                endpoint=snap.base_url,
                model_type=next((r.model_type for r in routes if r.model_type), ""),
                max_context=max((r.max_input_tokens or r.max_tokens for r in routes), default=0),
                # "partial_outage" still serves; "unknown" means no health check ran, which is not an outage
                available=snap.up and any(r.status != "outage" for r in routes),
                seen_at=snap.observed_at,
            )
        )
    return out


def sightings_from_docker(snap: DockerHostSnapshot) -> dict[str, list[Sighting]]:
    """Served models of one Docker host's containers, by container id (vLLM's default served name is the path).

    Containers that serve no model (no served name, no model path) are left out.
    """
    out: dict[str, list[Sighting]] = {}
    for c in snap.containers:
        names = c.models or ([c.model_path] if c.model_path else [])
        running = c.state == "running" and c.health in ("", "healthy")
        found = [
            Sighting(
                name=name,
                provider="docker",
                model_id=c.model_path,
                endpoint=c.scrape_url,
                max_context=c.max_model_len,
                available=running,
                seen_at=snap.observed_at,
                quantization=c.quantization.lower(),
            )
            for name in names
            if name
        ]
        if found:
            out[c.id] = found
    return out


#: Docker event actions after which a container serves nothing until its next snapshot says otherwise.
STOPPED_ACTIONS = frozenset({"die", "stop", "kill", "oom", "destroy", "pause"})


def unavailable(sightings: Iterable[Sighting]) -> tuple[Sighting, ...]:
    """The same sightings, none available (a stopped container, a silent source)."""
    return tuple(_unavailable(s) for s in sightings)


@dataclass(frozen=True)
class SourceSightings:
    """What one publisher (a vLLM target, a LiteLLM proxy, a Docker host) last said.

    Attributes:
        sightings: its models.
        received_at: Unix seconds of its last snapshot.
        interval_s: its publishing interval (to tell when it went quiet).
    """

    sightings: tuple[Sighting, ...]
    received_at: float
    interval_s: float


def replace_source(
    previous: SourceSightings | None, new: list[Sighting], *, up: bool, received_at: float, interval_s: float
) -> SourceSightings:
    """The new state of one source: a down source that lists nothing keeps its models, marked unavailable.

    A vLLM that crashed answers nothing; its models must stay in the catalog (first seen, HF metadata),
    just not as available.
    """
    if not new and not up and previous is not None:
        kept = tuple(_unavailable(s) for s in previous.sightings)
        return SourceSightings(kept, received_at, interval_s)
    return SourceSightings(tuple(new), received_at, interval_s)


def current_sightings(
    sources: Mapping[str, SourceSightings], now: float, *, stale_intervals: float = 3.0, retain_s: float = 86400.0
) -> tuple[list[Sighting], list[str]]:
    """Every sighting to merge now, and the source keys to forget.

    A source silent for ``stale_intervals`` of its own interval still counts, but as unavailable; one
    silent for ``retain_s`` is forgotten (its models leave the catalog unless seen elsewhere).
    """
    out: list[Sighting] = []
    forget: list[str] = []
    for key, src in sources.items():
        age = now - src.received_at
        if age > retain_s:
            forget.append(key)
        elif age > stale_intervals * max(src.interval_s, 1.0):
            out.extend(_unavailable(s) for s in src.sightings)
        else:
            out.extend(src.sightings)
    return out, forget


def _unavailable(s: Sighting) -> Sighting:
    return replace(s, available=False) if s.available else s


def publish_key(entries: Mapping[str, CatalogEntry]) -> tuple[tuple[Any, ...], ...]:
    """What makes a catalog *different* from the last one published: everything but ``last_seen``."""
    return tuple(
        (
            e.name,
            e.model_id,
            e.model_type,
            tuple(e.providers),
            tuple(e.endpoints),
            e.max_context,
            e.quantization,
            e.parameter_count,
            e.available,
            e.first_seen,
            e.pipeline_tag,
            e.license,
            e.gated,
        )
        for e in entries.values()
    )


# --------------------------------------------------------------------------------------------------------------
# Hugging Face lookups as cached (in memory and in the shared JetStream key-value bucket)

#: ``ok``: metadata read; ``gated``: 401/403 (private, gated or restricted: not retried until the record
#: expires); ``not_found``: 404, not a Hub model.
HF_STATUSES = ("ok", "gated", "not_found")


@dataclass(frozen=True)
class HfRecord:
    """The outcome of one HF lookup, as cached."""

    status: str
    fetched_at: float
    info: HfInfo = HfInfo()

    def to_json(self) -> bytes:
        """Compact JSON for the key-value bucket."""
        import json

        return json.dumps(
            {"status": self.status, "fetched_at": self.fetched_at, "info": asdict(self.info)}, separators=(",", ":")
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> HfRecord | None:
        """Parse a cached record; None for anything malformed (then the model is looked up again)."""
        import json

        try:
            data = json.loads(raw)
            info = data.get("info") or {}
            status = str(data["status"])
            if status not in HF_STATUSES:
                return None
            return cls(
                status=status,
                fetched_at=float(data["fetched_at"]),
                info=HfInfo(
                    parameter_count=int(info.get("parameter_count", 0)),
                    quantization=str(info.get("quantization", "")),
                    pipeline_tag=str(info.get("pipeline_tag", "")),
                    license=str(info.get("license", "")),
                    gated=bool(info.get("gated", False)),
                    private=bool(info.get("private", False)),
                ),
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def record_for_status(status: int, now: float) -> HfRecord | None:
    """The cacheable record an HTTP failure status means, or None when it must be retried later (429, 5xx…)."""
    if status in (401, 403):
        return HfRecord("gated", now, HfInfo(gated=True))
    if status == 404:
        return HfRecord("not_found", now)
    return None


def kv_key(repo_id: str) -> str:
    """A JetStream KV key for a repo id (keys allow ``[-/_=.a-zA-Z0-9]``; dots split tokens, so none of those)."""
    import hashlib

    digest = hashlib.blake2s(repo_id.encode(), digest_size=4).hexdigest()
    return "hf." + re.sub(r"[^-_a-zA-Z0-9]", "_", repo_id)[:200] + "-" + digest


def retry_delay_s(failures: int, base_s: float = 30.0, max_s: float = 3600.0) -> float:
    """Backoff before looking a repo up again after ``failures`` consecutive timeouts/5xx (doubling, capped)."""
    return min(max_s, base_s * (2.0 ** max(0, failures - 1)))
