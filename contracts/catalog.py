"""The model catalog: every model seen anywhere, merged into one entry per model."""

from __future__ import annotations

from typing import Literal

import msgspec

from inferwatch.contracts.base import Snapshot

# What a model does; LiteLLM routes and catalog entries share the vocabulary.
ModelType = Literal["llm", "embedding", "reranker", "image", "audio", "other"]
# Where the catalog saw a model: a vLLM instance, a LiteLLM proxy, a container's command line.
Provider = Literal["vllm", "litellm", "docker"]


class CatalogEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One model.

    Attributes:
        name: the name clients use.
        model_id: the underlying id (HF repo id or path).
        model_type: ``llm`` / ``embedding`` / ``reranker`` / ``image`` / ``audio`` / ``other``.
        providers: where it was seen (``vllm``, ``litellm``, ``docker``).
        endpoints: URLs to call it at.
        max_context: context length, 0 when unknown.
        quantization: ``awq``, ``gptq``, ``fp8``, ``gguf``… or ``""``.
        parameter_count: from safetensors metadata, 0 when unknown.
        available: served by at least one ready backend now.
        first_seen: Unix seconds.
        last_seen: Unix seconds.
        hf_url: Hugging Face link, when the id looks like a repo id.
        pipeline_tag: HF pipeline tag.
        license: HF licence.
        gated: HF gated/private flag.
    """

    name: str
    model_id: str = ""
    model_type: ModelType = "llm"
    providers: list[Provider] = []
    endpoints: list[str] = []
    max_context: int = 0
    quantization: str = ""
    parameter_count: int = 0
    available: bool = False
    first_seen: float = 0.0
    last_seen: float = 0.0
    hf_url: str = ""
    pipeline_tag: str = ""
    license: str = ""
    gated: bool = False


class ModelCatalogSnapshot(Snapshot, frozen=True, kw_only=True, tag="catalog.models"):
    """The whole catalog as one publisher knows it. ``source`` is the publisher's key."""

    entries: list[CatalogEntry]
