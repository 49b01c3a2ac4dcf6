"""Model catalog snapshots → ``inferwatch_model_info`` and availability, one series set per model."""

from __future__ import annotations

from inferwatch.contracts.catalog import ModelCatalogSnapshot
from inferwatch.services.aggregator.render import Family, SeriesWriter, label_block, renderer_for

INFO = Family(
    "inferwatch_model_info",
    "gauge",
    "Catalog entry of a model (id, type, providers, quantization, HF link, licence); always 1.",
)
AVAILABLE = Family("inferwatch_model_available", "gauge", "1 when a ready backend serves the model now.")
PARAMS = Family("inferwatch_model_parameters", "gauge", "Parameter count from the safetensors metadata.")
CONTEXT = Family("inferwatch_model_max_context_tokens", "gauge", "Maximum context length.")
FIRST_SEEN = Family("inferwatch_model_first_seen_timestamp_seconds", "gauge", "When the model was first seen.")


def render_catalog(event: ModelCatalogSnapshot, w: SeriesWriter) -> None:
    """Every model of one catalog publisher."""
    for m in event.entries:
        ident = {"model": m.name}
        w.gauge(
            INFO,
            label_block(
                {
                    **ident,
                    "model_id": m.model_id,
                    "type": m.model_type,
                    "providers": ",".join(m.providers),
                    "quantization": m.quantization,
                    "hf_url": m.hf_url,
                    "pipeline_tag": m.pipeline_tag,
                    "license": m.license,
                    "gated": "true" if m.gated else "false",
                }
            ),
            1.0,
        )
        base = label_block(ident)
        w.gauge(AVAILABLE, base, 1.0 if m.available else 0.0)
        w.gauge(PARAMS, base, float(m.parameter_count) if m.parameter_count else None)
        w.gauge(CONTEXT, base, float(m.max_context) if m.max_context else None)
        w.gauge(FIRST_SEEN, base, m.first_seen if m.first_seen else None)


RENDERERS = renderer_for(ModelCatalogSnapshot, render_catalog)
