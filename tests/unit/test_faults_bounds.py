"""Counted bounds against many engines and many sources, on the in-process state (no servers)."""

from __future__ import annotations

from inferwatch.contracts.vllm import VllmEngineStats, VllmInstanceSnapshot, VllmModelCard
from inferwatch.services.aggregator.domains import all_renderers
from inferwatch.services.aggregator.state import SourceTable
from inferwatch.services.vllm_scraper.config import VllmScraperConfig
from inferwatch.services.vllm_scraper.core import MAX_LABEL_VALUES, cap_engines, cap_models
from inferwatch.shared.settings import Env


def test_cap_engines_keeps_served_models_first_and_counts_the_rest() -> None:
    served = VllmEngineStats(
        model_name="zz-real",
        engine="0",
        requests_running=1.0,
        request_success_total={f"r{i:02d}": 1.0 for i in range(MAX_LABEL_VALUES + 5)},
    )
    flood = [VllmEngineStats(model_name=f"aa-{i:05d}", engine="0") for i in range(10_000)]
    kept, dropped = cap_engines([*flood, served], 32, ["zz-real"])
    assert len(kept) == 32
    assert dropped == {"max_engines": 10_001 - 32, "max_finished_reasons": 5}
    real = [e for e in kept if e.model_name == "zz-real"]
    assert len(real) == 1
    assert len(real[0].request_success_total) == MAX_LABEL_VALUES
    assert kept == sorted(kept, key=lambda e: (e.model_name, e.engine))
    # under the cap nothing changes and nothing is counted
    assert cap_engines(flood[:3], 32) == (flood[:3], {})
    cards = [VllmModelCard(id=f"m{i}") for i in range(300)]
    assert cap_models(cards, 256) == (cards[:256], 44)
    assert cap_models(cards[:2], 256) == (cards[:2], 0)


def test_max_engines_setting() -> None:
    assert VllmScraperConfig.from_env(Env({})).max_engines == 32
    assert VllmScraperConfig.from_env(Env({"INFERWATCH_VLLM_MAX_ENGINES": "4"})).max_engines == 4
    assert VllmScraperConfig.from_env(Env({"INFERWATCH_VLLM_MAX_MODELS": "7"})).max_models == 7


def test_many_distinct_sources_are_bounded_and_counted() -> None:
    # a publisher inventing a new source per event (a label-value bomb on ``source``) stops at max_sources
    table = SourceTable(all_renderers(), max_sources=1_000)
    for i in range(5_000):
        table.apply(
            VllmInstanceSnapshot(
                source=f"http://bomb-{i}:8000", observed_at=1.0, collector="c", interval_s=15.0, up=True
            ),
            now=0.0,
        )
    assert len(table.sources) == 1_000
    assert table.stats.dropped == {"max_sources": 4_000}
    series = sum(len(chunk) for chunk in table.rendered())
    assert series <= 1_000 * (3 + 20)  # bounded by the sources kept, whatever was offered
    # the sources already held keep updating
    table.apply(
        VllmInstanceSnapshot(source="http://bomb-0:8000", observed_at=2.0, collector="c", interval_s=15.0, up=False),
        now=1.0,
    )
    assert table.sources[("vllm.instance", "http://bomb-0:8000")].event.up is False
