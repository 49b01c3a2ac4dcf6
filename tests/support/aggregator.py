"""An aggregator state with a catalog and a GPU host, as the status page reads it."""

from __future__ import annotations

import time
from types import SimpleNamespace

from inferwatch.contracts.catalog import CatalogEntry, ModelCatalogSnapshot
from inferwatch.contracts.gpu import GpuHostSnapshot
from inferwatch.services.aggregator.domains.gpu import render_gpu_host
from inferwatch.services.aggregator.render import SeriesWriter
from inferwatch.services.aggregator.state import SourceTable


def catalog_snapshot() -> ModelCatalogSnapshot:
    """A model catalog with one available vLLM model and one unavailable LiteLLM embedding model."""
    return ModelCatalogSnapshot(
        source="catalog",
        observed_at=time.time(),
        collector="c",
        interval_s=1.0,
        entries=[
            CatalogEntry(
                name="qwen3-8b",
                model_id="Qwen/Qwen3-8B",
                providers=["vllm"],
                available=True,
                endpoints=["http://10.0.0.5:8000"],
                parameter_count=8_190_000_000,
                hf_url="https://huggingface.co/Qwen/Qwen3-8B",
            ),
            CatalogEntry(
                name="bge-m3",
                model_id="BAAI/bge-m3",
                model_type="embedding",
                providers=["litellm"],
                endpoints=["http://litellm:4000"],
                available=False,
            ),
        ],
    )


def _noop(_event: object, _w: SeriesWriter) -> None:
    """A renderer that writes nothing (the status page reads the catalog from the table, not /metrics)."""


def make_aggregator() -> SimpleNamespace:
    """The part of an aggregator the status page reads (``.table``), holding a GPU host and the catalog."""
    table = SourceTable({GpuHostSnapshot: render_gpu_host, ModelCatalogSnapshot: _noop}, tombstone_s=600.0)
    now = time.monotonic()
    table.apply(
        GpuHostSnapshot(
            source="gpu-host-1", observed_at=time.time(), collector="c", interval_s=1.0, nvml_available=True
        ),
        now,
    )
    table.apply(catalog_snapshot(), now)
    return SimpleNamespace(table=table)
