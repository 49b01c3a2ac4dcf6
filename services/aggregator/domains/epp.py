"""EPP snapshots → ``inferwatch_epp_*``: one stable family set whatever the EPP's naming generation."""

from __future__ import annotations

from inferwatch.contracts.epp import (
    EppObjectiveStats,
    EppPluginStats,
    EppPoolStats,
    EppPrefixIndexerStats,
    EppSnapshot,
)
from inferwatch.services.aggregator.render import (
    Family,
    SeriesWriter,
    field_families,
    label_block,
    renderer_for,
    write_fields,
)

P = "inferwatch_epp_"
UP = Family(P + "up", "gauge", "1 when the EPP's /metrics was scraped, 0 with the reason (what to fix) otherwise.")
INFO = Family(P + "info", "gauge", "Detected EPP metric naming generation; always 1.")
# one family per metric field of the contracts
OBJECTIVE_FAMILIES = field_families(EppObjectiveStats, P)
POOL_FAMILIES = field_families(EppPoolStats, P)
PREFIX_INDEXER_FAMILIES = field_families(EppPrefixIndexerStats, P)
PLUGIN_FAMILIES = field_families(EppPluginStats, P)
SNAPSHOT_FAMILIES = field_families(EppSnapshot, P)


def render_epp(event: EppSnapshot, w: SeriesWriter) -> None:
    """One EPP target."""
    t = {"target": event.source}
    w.gauge(UP, label_block({**t, "reason": event.error}), 1.0 if event.up else 0.0)
    if event.naming:
        w.gauge(INFO, label_block({**t, "naming": event.naming}), 1.0)
    for o in event.objectives:
        labels = label_block({**t, "model_name": o.model_name, "target_model_name": o.target_model_name})
        write_fields(w, OBJECTIVE_FAMILIES, labels, o)
    for p in event.pools:
        write_fields(w, POOL_FAMILIES, label_block({**t, "pool": p.pool}), p)
    for x in event.prefix_indexers:
        labels = label_block({**t, "plugin_type": x.plugin_type, "plugin_name": x.plugin_name})
        write_fields(w, PREFIX_INDEXER_FAMILIES, labels, x)
    for g in event.plugins:
        labels = label_block(
            {**t, "extension_point": g.extension_point, "plugin_type": g.plugin_type, "plugin_name": g.plugin_name}
        )
        write_fields(w, PLUGIN_FAMILIES, labels, g)
    write_fields(w, SNAPSHOT_FAMILIES, label_block(t), event)


RENDERERS = renderer_for(EppSnapshot, render_epp)
