"""EppCacheHitRateLow and EppTtftHigh: the simulator's scenario knobs, read by the scraper core, fire the shipped
rules in the aggregator's engine after their ``for`` and resolve them when the knob is turned back (simulated time:
one scrape every 30 s, nothing waits)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from inferwatch.contracts.alert import Alert
from inferwatch.contracts.epp import EppSnapshot
from inferwatch.services.aggregator.rule_engine import DEFAULT_RULES_FILE, AlertEngine, load_rules
from inferwatch.services.epp_scraper.core import WANTED, snapshot_fields
from inferwatch.shared.exposition import parse_exposition
from inferwatch.simulators.epp import EppSimulator

T0 = 1_800_000_000.0
SCRAPE_S = 30.0
TARGET = "http://epp:9090"


def _scrape(sim: EppSimulator, at: float) -> EppSnapshot:
    sim.step()
    fams = parse_exposition(sim.render().encode(), families=WANTED)
    return EppSnapshot(
        source=TARGET, observed_at=at, collector="t", interval_s=SCRAPE_S, up=True, **snapshot_fields(fams)
    )


def _run(sim: EppSimulator, engine: AlertEngine, start: float, minutes: float) -> list[tuple[float, Alert]]:
    seen: list[tuple[float, Alert]] = []
    t = start
    while t < start + minutes * 60:
        for alert in engine.on_event(_scrape(sim, t), t) + engine.tick(t):
            if alert.name.startswith("Epp"):
                seen.append((t - start, alert))
        t += SCRAPE_S
    return seen


def _set_cache_hit_low(sim: EppSimulator, on: bool) -> None:
    sim.cache_hit = 0.05 if on else 0.65


def _set_ttft_slow(sim: EppSimulator, on: bool) -> None:
    sim.ttft_slow = on


@pytest.mark.parametrize(
    ("alert", "knob", "labels", "for_s"),
    [
        ("EppCacheHitRateLow", _set_cache_hit_low, {"plugin_name": "prefix-cache-scorer"}, 600.0),
        ("EppTtftHigh", _set_ttft_slow, {"model_name": "llama"}, 300.0),
    ],
)
def test_scenario_fires_after_for_and_resolves(
    alert: str, knob: Callable[[EppSimulator, bool], None], labels: dict[str, str], for_s: float
) -> None:
    sim = EppSimulator(fast=True)  # the calm demo's baseline: no EPP rule fires
    engine = AlertEngine(load_rules(DEFAULT_RULES_FILE))
    assert _run(sim, engine, T0, 20) == []
    knob(sim, True)
    fired = [(t, a) for t, a in _run(sim, engine, T0 + 1200, 40) if a.name == alert]
    firing = [(t, a) for t, a in fired if a.state == "firing" and a.labels.items() >= labels.items()]
    assert firing, fired
    first_t, first = firing[0]
    assert first_t >= for_s  # held for the rule's `for`
    assert first.labels["target"] == TARGET
    assert first.annotations["runbook_url"].endswith("#" + alert.lower())
    knob(sim, False)
    after = _run(sim, engine, T0 + 1200 + 2400, 20)
    resolved = [a for _, a in after if a.name == alert and a.state == "resolved" and a.source == first.source]
    assert resolved
    assert not any(a.state == "firing" for a in engine.firing() if a.name == alert)
