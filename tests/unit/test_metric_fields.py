"""Metric fields (contracts.metrics): each declaration reaches /metrics under its own name, help and type."""

from __future__ import annotations

from inferwatch.cli import json_schemas
from inferwatch.contracts.epp import (
    EppObjectiveStats,
    EppPluginStats,
    EppPoolStats,
    EppPrefixIndexerStats,
    EppSnapshot,
)
from inferwatch.contracts.litellm import LitellmProxySnapshot, ModelUsage
from inferwatch.contracts.metrics import metric_fields
from inferwatch.contracts.vllm import VllmEngineStats, VllmHttpHandlerStats, VllmLoraStats
from inferwatch.services.aggregator.domains import all_families, all_renderers
from inferwatch.services.aggregator.render import render_exposition
from inferwatch.services.aggregator.state import SourceTable
from inferwatch.services.epp_scraper import core as epp
from inferwatch.services.litellm_poller import core as litellm
from inferwatch.services.vllm_scraper.core import WANTED, V
from inferwatch.shared.exposition import MetricFamily, parse_exposition
from tests.support import FIXTURES
from tests.support.aggregator import scraped_vllm_snapshot

# The recorded V0 exposition predates vLLM 0.6.3, the only release with this gauge (shared/reference/vllm-and-epp.md).
# Every recorded EPP runs with the flowControl feature gate off, so none has this gauge.
FLOW_CONTROL = b"# TYPE llm_d_epp_flow_control_queue_size gauge\nllm_d_epp_flow_control_queue_size 3\n"
V063_HIT_RATE = (
    b'# TYPE vllm:gpu_prefix_cache_hit_rate gauge\nvllm:gpu_prefix_cache_hit_rate{model_name="m"} 0.25\n'
    b'# TYPE vllm:cpu_prefix_cache_hit_rate gauge\nvllm:cpu_prefix_cache_hit_rate{model_name="m"} 0.5\n'
)


def _exposed(table: SourceTable) -> dict[str, MetricFamily]:
    return parse_exposition(render_exposition(table.rendered()))


def test_every_vllm_metric_field_reaches_metrics_from_the_recorded_expositions() -> None:
    table = SourceTable(all_renderers())
    bodies = {
        "v0": (FIXTURES / "vllm-v0-metrics.txt").read_bytes(),
        "v1": (FIXTURES / "vllm-v1-metrics.txt").read_bytes(),
        "v0.6.3": V063_HIT_RATE,
        # speculative decoding, LoRA and moving MFU counters: simulated (scripts/record_vllm_sim_fixtures.py)
        **{path.name: path.read_bytes() for path in sorted((FIXTURES / "vllm").glob("simulated-*.txt"))},
    }
    for source, body in bodies.items():  # V0-only and V1-only figures together
        table.apply(scraped_vllm_snapshot(body, source), now=0.0)
    exposed = _exposed(table)
    declared = metric_fields(VllmEngineStats)
    assert {m.field for m in declared} == set(VllmEngineStats.__struct_fields__) - {"model_name", "engine"}
    for prefix, struct in (
        ("inferwatch_vllm_", VllmEngineStats),
        ("inferwatch_vllm_lora_", VllmLoraStats),
        ("inferwatch_vllm_http_", VllmHttpHandlerStats),
    ):
        for m in metric_fields(struct):
            family = exposed.get(prefix + m.family_name)
            assert family is not None, m.field
            assert family.samples, m.field
            assert (family.type, family.help) == (m.type, m.help), m.field
            assert {V + source for source in m.sources} <= WANTED or set(m.sources) <= WANTED, m.field


def test_every_epp_metric_field_reaches_metrics_from_the_recorded_expositions() -> None:
    table = SourceTable(all_renderers())
    body = (FIXTURES / "epp" / "llm_d_epp.txt").read_bytes() + FLOW_CONTROL
    fams = parse_exposition(body, families=epp.WANTED)
    snapshot = EppSnapshot(
        source="epp", observed_at=0.0, collector="t", interval_s=5.0, up=True, **epp.snapshot_fields(fams)
    )
    table.apply(snapshot, now=0.0)
    exposed = _exposed(table)
    for struct in (EppObjectiveStats, EppPoolStats, EppPrefixIndexerStats, EppPluginStats, EppSnapshot):
        for m in metric_fields(struct):
            family = exposed.get("inferwatch_epp_" + m.family_name)
            assert family is not None, m.field
            assert family.samples, m.field
            assert (family.type, family.help) == (m.type, m.help), m.field
    declared = {m.field for m in metric_fields(EppObjectiveStats)}
    assert declared == set(EppObjectiveStats.__struct_fields__) - {"model_name", "target_model_name"}
    assert {m.field for m in metric_fields(EppPoolStats)} == set(EppPoolStats.__struct_fields__) - {"pool"}


def test_every_litellm_usage_field_reaches_metrics_from_the_recorded_exposition() -> None:
    table = SourceTable(all_renderers())
    body = (FIXTURES / "litellm" / "metrics.http").read_bytes().split(b"\n\n", 1)[1]  # status and headers first
    usage = litellm.usage_by_group(parse_exposition(body, families=litellm.WANTED))
    snapshot = LitellmProxySnapshot(
        source="proxy", observed_at=0.0, collector="t", interval_s=5.0, up=True, usage=usage
    )
    table.apply(snapshot, now=0.0)
    exposed = _exposed(table)
    for m in metric_fields(ModelUsage):
        family = exposed.get("inferwatch_litellm_" + m.family_name)
        assert family is not None, m.field
        assert family.samples, m.field
        assert (family.type, family.help) == (m.type, m.help), m.field


def test_metric_fields_are_in_the_readme_families_and_the_json_schema() -> None:
    families = {f.name: f for f in all_families()}
    schema = json_schemas()["$defs"]["VllmEngineStats"]["properties"]
    for m in metric_fields(VllmEngineStats):
        family = families["inferwatch_vllm_" + m.family_name]
        assert (family.type, family.help, family.unit) == (m.type, m.help, m.unit)
        assert schema[m.field]["description"] == m.help
        assert schema[m.field]["x-metric"]["sources"] == list(m.sources)


def test_counters_keep_total_on_the_field_and_drop_it_from_the_family() -> None:
    by_field = {m.field: m for m in metric_fields(VllmEngineStats)}
    assert by_field["preemptions_total"].family_name == "preemptions"
    assert by_field["time_to_first_token_seconds"].family_name == "time_to_first_token_seconds"
    assert by_field["request_success_total"].label == "finished_reason"
    assert set(by_field).isdisjoint({"model_name", "engine"})
