"""System: `inferwatch up --demo` + a real Prometheus (1 s scrape and evaluation) scraping the aggregator.

Checks that every vLLM Docker status panel's query returns data, that every shipped rule evaluates without
error, and two scenarios injected on the bus as the vLLM scraper publishes them: a target going down fires
VllmTargetDown on the NATS alert stream and in Prometheus and resolves in both when it recovers; a growing
preemption counter fires VllmPreemptions in both (and resolves on NATS at the next quiet snapshot; Prometheus'
`increase(...[5m])` keeps it for five minutes, beyond this test's budget).
The Prometheus copy of the rules has its `for` durations set to 0 s so the test fits its time budget.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from inferwatch.contracts import Event
from inferwatch.contracts.alert import Alert
from inferwatch.contracts.vllm import VllmEngineStats, VllmInstanceSnapshot
from inferwatch.shared.bus import Bus, BusSettings
from tests.support import ROOT, free_port, wait_until
from tests.support.system import prometheus_query, run_demo, run_prometheus

pytestmark = pytest.mark.slow

DEPLOY = ROOT / "deploy"
METRIC = re.compile(r"\binferwatch_[a-zA-Z0-9_]+")
# Panels that cannot have data in the demo, and why.
NO_DATA_EXPECTED = {
    "Load duration": "set only once an instance is observed loading; the demo fleet starts ready",
}


def _pending() -> set[str]:
    lines = (DEPLOY / "pending-metrics.txt").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def _strip(name: str) -> str:
    return re.sub(r"_(total|bucket|sum|count)$", "", name)


def _concrete(expr: str) -> str:
    for var, value in (
        ("$__rate_interval", "30s"),
        ("$__range", "1m"),
        ("$host", ".*"),
        ("$model", ".*"),
        ("$container", ".*"),
    ):
        expr = expr.replace(var, value)
    return expr


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A Prometheus whose target is a free port the demo's aggregator will listen on."""
    agg_port = free_port()
    with run_prometheus(tmp_path, agg_port) as url:
        yield url, agg_port


@pytest.fixture
def demo(nats_url: str, prometheus: tuple[str, int]) -> Iterator[str]:
    """`inferwatch up --demo` on the session NATS, its aggregator on the port Prometheus scrapes."""
    _, agg_port = prometheus
    with run_demo(nats_url, agg_port):
        yield f"http://127.0.0.1:{agg_port}"


async def _query(prom: str, expr: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5) as client:
        return await prometheus_query(client, prom, expr)


async def _firing_in_prometheus(prom: str, name: str, target: str) -> bool:
    async with httpx.AsyncClient(timeout=5) as client:
        alerts = (await client.get(prom + "/api/v1/alerts")).json()["data"]["alerts"]
    return any(
        a["labels"].get("alertname") == name and a["labels"].get("target") == target and a["state"] == "firing"
        for a in alerts
    )


def snapshot(target: str, up: bool, preemptions: float | None = None) -> VllmInstanceSnapshot:
    engines = [] if preemptions is None else [VllmEngineStats(model_name="sys-model", preemptions_total=preemptions)]
    return VllmInstanceSnapshot(
        source=target,
        observed_at=time.time(),
        collector="system-test",
        interval_s=1.0,
        up=up,
        error="" if up else "timeout",
        status="ready" if up else "error",
        engines=engines,
    )


async def test_panels_have_data_and_vllm_target_down_fires_in_prometheus_and_on_nats(
    nats_url: str, prometheus: tuple[str, int], demo: str
) -> None:
    prom, _ = prometheus
    started = time.monotonic()
    await wait_until(
        lambda: _query(prom, "inferwatch_vllm_requests_running"),
        timeout=45,
        what="vLLM series in Prometheus",
        interval=0.5,
    )
    await asyncio.sleep(6)  # a few more scrapes so rate() windows have two samples and bursts of traffic

    board = json.loads((DEPLOY / "grafana" / "dashboards" / "vllm-docker-status.json").read_text())
    pending = _pending()
    empty, skipped = [], []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            names = {_strip(n) for n in METRIC.findall(target["expr"])}
            if names & pending:
                skipped.append(panel["title"])
                continue
            if panel["title"] in NO_DATA_EXPECTED:
                continue
            if not await _query(prom, _concrete(target["expr"])):
                empty.append(f"{panel['title']}: {target['expr']}")
    assert not empty, "panels without data:\n" + "\n".join(empty)
    assert set(skipped) <= {
        "CUDA version",
        "GPU memory per model",
        "GPU utilisation by container",
        "GPU memory trend",
    }, skipped

    async with httpx.AsyncClient(timeout=5) as client:
        groups = (await client.get(prom + "/api/v1/rules")).json()["data"]["groups"]
    unhealthy = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] == "err"]
    assert not unhealthy

    # the scenario: a vLLM target goes down, then recovers
    bus = Bus(BusSettings(servers=(nats_url,)), name="system-test")
    await bus.connect()
    received: list[Alert] = []

    async def on_alert(event: Event, _subject: str) -> None:
        if isinstance(event, Alert):
            received.append(event)

    await bus.subscribe("inferwatch.v1.alert.VllmTargetDown.>", on_alert)
    await bus.subscribe("inferwatch.v1.alert.VllmPreemptions.>", on_alert)
    await bus.flush()
    target = "http://127.0.0.1:9/down-scenario"
    preempting = "http://127.0.0.1:9/preemption-scenario"
    try:
        stop = asyncio.Event()

        async def keep_publishing(up: bool) -> None:
            while not stop.is_set():
                await bus.publish(snapshot(target, up))
                await asyncio.sleep(0.5)

        # second scenario: the scheduler preempts (the counter grows between two snapshots)
        for count in (3.0, 3.0, 7.0):
            await bus.publish(snapshot(preempting, True, count))
            await asyncio.sleep(1.2)
        await wait_until(
            lambda: any(
                a.name == "VllmPreemptions" and a.labels.get("target") == preempting and a.state == "firing"
                for a in received
            ),
            timeout=5,
            what="VllmPreemptions on NATS",
        )
        await wait_until(
            lambda: _firing_in_prometheus(prom, "VllmPreemptions", preempting),
            timeout=15,
            what="VllmPreemptions firing in Prometheus",
            interval=0.5,
        )
        await bus.publish(snapshot(preempting, True, 7.0))
        await wait_until(
            lambda: any(a.name == "VllmPreemptions" and a.state == "resolved" for a in received),
            timeout=5,
            what="VllmPreemptions resolved on NATS",
        )

        publisher = asyncio.create_task(keep_publishing(False))
        down_at = time.monotonic()
        # Prometheus' copy has `for: 0s`; the aggregator runs the shipped rule (`for: 30s`)
        await wait_until(
            lambda: _firing_in_prometheus(prom, "VllmTargetDown", target),
            timeout=15,
            what="VllmTargetDown firing in Prometheus",
            interval=0.5,
        )
        await wait_until(
            lambda: any(a.labels.get("target") == target and a.state == "firing" for a in received),
            timeout=40,
            what="VllmTargetDown on NATS",
            interval=0.2,
        )
        assert time.monotonic() - down_at >= 29  # the `for` duration held
        stop.set()
        await publisher
        stop.clear()
        publisher = asyncio.create_task(keep_publishing(True))
        await wait_until(
            lambda: any(a.labels.get("target") == target and a.state == "resolved" for a in received),
            timeout=10,
            what="VllmTargetDown resolved on NATS",
        )

        async def resolved_in_prometheus() -> bool:
            return not await _firing_in_prometheus(prom, "VllmTargetDown", target)

        await wait_until(resolved_in_prometheus, timeout=15, what="VllmTargetDown resolved in Prometheus")
        stop.set()
        await publisher
    finally:
        await bus.close()
    assert time.monotonic() - started < 90
