"""Pure functions of the model catalog: merge model sightings into ``CatalogEntry``s, read HF metadata.

A *sighting* is one place a model was seen (a vLLM ``/v1/models`` card, a LiteLLM route, a container's
served model). Sightings of the same name merge into one entry; Hugging Face metadata (from
``GET {HF_ENDPOINT}/api/models/{repo_id}``) fills parameter count, quantization, pipeline tag, licence and
gated/private.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from contracts.catalog import CatalogEntry

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
    provider: str
    model_id: str = ""
    endpoint: str = ""
    model_type: str = ""
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
            (s.model_id for s in group if s.model_id), "")
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
            or quantization_from_text(model_id, name) or (before.quantization if before else ""),
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
    files = [str(s.get("rfilename", "")) for s in body.get("siblings", []) if isinstance(s, dict)] \
        if isinstance(body.get("siblings"), list) else []
    card = body.get("cardData") if isinstance(body.get("cardData"), dict) else {}
    license_ = next((t.split(":", 1)[1] for t in tags if t.startswith("license:")), "") or str(
        (card or {}).get("license", "") or "")
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
        entry, parameter_count=info.parameter_count or entry.parameter_count,
        quantization=entry.quantization or info.quantization, pipeline_tag=info.pipeline_tag or entry.pipeline_tag,
        license=info.license or entry.license, gated=info.gated or info.private or entry.gated,
        model_type=(entry.model_type if entry.model_type != "llm" or not info.pipeline_tag
                    else _type_of(info.pipeline_tag)),
    )


def _type_of(pipeline_tag: str) -> str:
    if pipeline_tag in ("feature-extraction", "sentence-similarity"):
        return "embedding"
    if pipeline_tag == "text-classification":
        return "reranker"
    if pipeline_tag in ("text-generation", "image-text-to-text", "text2text-generation"):
        return "llm"
    return "other"
