"""System: the ``slo_error_burn`` scenario fires each burn-rate alert of the vllm-availability SLO in the aggregator
(on NATS) and in a real Prometheus (the generated rules), and each resolves once the scenario ends.

`inferwatch up --demo` (``INFERWATCH_SIM_CALM=1``) gets the shipped SLOs with the Workbook's windows shortened
through ``INFERWATCH_AGGREGATOR_SLO_FILE`` (an hour as 20 s: 20s/4s at 14.4x, 60s/8s at 6x, 120s/15s at 1x, a 600 s
budget); Prometheus gets the rules `prometheus_rules` generates from that same file. The scenario makes half of
qwen3-8b's requests end in ``error``: a 50x burn of a 1 % budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import yaml  # type: ignore[import-untyped]

from inferwatch.contracts import Event
from inferwatch.contracts.alert import Alert
from inferwatch.services.aggregator.slo import ALERT_NAME, DEFAULT_SLO_FILE, load_slos, prometheus_rules
from inferwatch.shared.bus import Bus, BusSettings
from tests.support import free_port, wait_until
from tests.support.system import listed_scenarios, prometheus_query, run_demo, run_prometheus

pytestmark = pytest.mark.slow

SCENARIO = "slo_error_burn"
WINDOWS = [
    {"long": "20s", "short": "4s", "factor": 14.4, "action": "page"},
    {"long": "60s", "short": "8s", "factor": 6, "action": "page"},
    {"long": "120s", "short": "15s", "factor": 1, "action": "ticket"},
]
PAIRS = [f"{w['long']}/{w['short']}" for w in WINDOWS]
TIMEOUT_S = 90.0


@dataclass
class Outcome:
    """What one run saw, per window pair."""

    quiet_before: bool = False
    fired_nats: dict[str, float] = field(default_factory=dict)  # window -> seconds after the scenario started
    fired_prom: dict[str, float] = field(default_factory=dict)
    resolved_nats: dict[str, float] = field(default_factory=dict)  # seconds after it ended
    resolved_prom: dict[str, float] = field(default_factory=dict)
    budget_left: float | None = None


def _matches(labels: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in wanted.items())


async def _run(nats_url: str, prom: str, control: str, aggregator: str, out: Outcome) -> None:
    bus = Bus(BusSettings(servers=(nats_url,)), name="slo-scenarios-test")
    await bus.connect()
    received: list[Alert] = []

    async def on_alert(event: Event, _subject: str) -> None:
        if isinstance(event, Alert):
            received.append(event)

    await bus.subscribe(f"inferwatch.v1.alert.{ALERT_NAME}.>", on_alert)
    await bus.flush()
    client = httpx.AsyncClient(timeout=5)
    try:
        scenarios = await wait_until(
            lambda: listed_scenarios(client, control), timeout=60, what="the scenario control API"
        )
        wanted = next(s for s in scenarios if s["name"] == SCENARIO)["labels"]
        series = 'inferwatch_slo_burn_rate{slo="vllm-availability",model_name="qwen3-8b",window="120s"}'
        await wait_until(
            lambda: prometheus_query(client, prom, series), timeout=60, what="SLO burn rates in Prometheus"
        )

        def nats_state(window: str) -> str | None:
            states = [a.state for a in received if _matches(a.labels, {**wanted, "window": window})]
            return states[-1] if states else None

        async def prom_firing() -> set[str]:
            alerts = (await client.get(prom + "/api/v1/alerts")).json()["data"]["alerts"]
            return {
                a["labels"]["window"]
                for a in alerts
                if a["labels"].get("alertname") == ALERT_NAME
                and a["state"] == "firing"
                and _matches(a["labels"], wanted)
            }

        out.quiet_before = all(nats_state(w) is None for w in PAIRS) and not await prom_firing()
        started = time.monotonic()
        (await client.post(f"{control}/scenarios/{SCENARIO}")).raise_for_status()

        async def all_fired() -> bool:
            firing = await prom_firing()
            for w in PAIRS:
                if w not in out.fired_nats and nats_state(w) == "firing":
                    out.fired_nats[w] = time.monotonic() - started
                if w not in out.fired_prom and w in firing:
                    out.fired_prom[w] = time.monotonic() - started
            return len(out.fired_nats) == len(out.fired_prom) == len(PAIRS)

        with contextlib.suppress(AssertionError):  # the per-window tests name what did not fire
            await wait_until(all_fired, timeout=TIMEOUT_S, what="every burn-rate pair firing", interval=0.25)
        status = (await client.get(aggregator + "/api/status")).json()
        out.budget_left = next(
            (
                s["error_budget_remaining"]
                for s in status["slos"]
                if s["slo"] == "vllm-availability" and s["model"] == "qwen3-8b"
            ),
            None,
        )
        ended = time.monotonic()
        (await client.delete(f"{control}/scenarios/{SCENARIO}")).raise_for_status()

        async def all_resolved() -> bool:
            firing = await prom_firing()
            for w in PAIRS:
                if w not in out.resolved_nats and nats_state(w) == "resolved":
                    out.resolved_nats[w] = time.monotonic() - ended
                if w not in out.resolved_prom and w in out.fired_prom and w not in firing:
                    out.resolved_prom[w] = time.monotonic() - ended
            return len(out.resolved_nats) == len(out.resolved_prom) == len(PAIRS)

        with contextlib.suppress(AssertionError):
            await wait_until(all_resolved, timeout=TIMEOUT_S, what="every burn-rate pair resolved", interval=0.25)
    finally:
        await client.aclose()
        await bus.close()


@pytest.fixture(scope="module")
def outcome(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    """Run the stack once: start the scenario, wait for every pair to fire, end it, wait for them to resolve."""
    tmp = tmp_path_factory.mktemp("slo-scenarios")
    slos = yaml.safe_load(DEFAULT_SLO_FILE.read_text())
    slos.update(burn_rate_alerts=WINDOWS, budget_window="600s")
    slo_file = tmp / "slos.yaml"
    slo_file.write_text(yaml.safe_dump(slos))
    groups = prometheus_rules(load_slos(slo_file))["groups"]
    agg_port, control_port = free_port(), free_port()
    env = {
        "INFERWATCH_SIM_CALM": "1",
        "INFERWATCH_SIM_CONTROL_PORT": str(control_port),
        "INFERWATCH_AGGREGATOR_SLO_FILE": str(slo_file),
    }
    with run_prometheus(tmp, agg_port, extra_groups=groups) as prom, run_demo(nats_url, agg_port, env):
        out = Outcome()
        asyncio.run(_run(nats_url, prom, f"http://127.0.0.1:{control_port}", f"http://127.0.0.1:{agg_port}", out))
        for what in ("fired_nats", "fired_prom", "resolved_nats", "resolved_prom"):
            print(f"\n{what}: " + ", ".join(f"{w} {s:.1f}s" for w, s in getattr(out, what).items()), end="")
        print(f"\nvllm-availability budget left for qwen3-8b at the firing: {out.budget_left}")
        yield out


def test_quiet_before_the_scenario(outcome: Outcome) -> None:
    assert outcome.quiet_before


@pytest.mark.parametrize("window", PAIRS)
def test_each_pair_fires_in_both_engines(outcome: Outcome, window: str) -> None:
    assert window in outcome.fired_nats, f"{window} never fired on NATS"
    assert window in outcome.fired_prom, f"{window} never fired in Prometheus"


@pytest.mark.parametrize("window", PAIRS)
def test_each_pair_resolves_in_both_engines(outcome: Outcome, window: str) -> None:
    assert window in outcome.resolved_nats, f"{window} not resolved on NATS"
    assert window in outcome.resolved_prom, f"{window} still firing in Prometheus"


def test_the_status_page_shows_the_budget_spent(outcome: Outcome) -> None:
    assert outcome.budget_left is not None
    assert outcome.budget_left < 1.0
