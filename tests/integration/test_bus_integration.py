"""Aggregator and bus over a real nats-server: ingest, bad messages, outages, restarts."""

from __future__ import annotations

import asyncio
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from inferwatch.contracts import encode, subject_for
from inferwatch.contracts.heartbeat import Heartbeat
from inferwatch.contracts.subjects import ALL, subject_filter
from inferwatch.contracts.vllm import VllmInstanceSnapshot
from inferwatch.shared.bus import Bus, BusSettings
from inferwatch.shared.natsserver import EmbeddedNats
from tests.support import free_port, get_text, running_service, wait_until


def metric(body: str, name: str, **labels: str) -> float | None:
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def vllm_snapshot(source: str, interval_s: float = 0.5, version: str = "0.33.0") -> VllmInstanceSnapshot:
    return VllmInstanceSnapshot(
        source=source,
        observed_at=time.time(),
        collector="test",
        interval_s=interval_s,
        up=True,
        status="ready",
        version=version,
    )


async def publisher(url: str) -> Bus:
    bus = Bus(BusSettings(servers=(url,)), name="test-publisher")
    await bus.connect()
    return bus


async def test_aggregator_exports_sources_and_survives_garbage(nats_url: str) -> None:
    env = {"NATS_URL": nats_url, "INFERWATCH_AGGREGATOR_SUBJECT": ALL}
    async with running_service("aggregator", env) as agg:
        bus = await publisher(nats_url)
        try:
            await bus.publish_raw("inferwatch.v1.vllm.instance.broken", b"\xc1\xc1 not msgpack")
            await bus.publish_raw("inferwatch.v1.vllm.instance.broken", b'{"type":"vllm.instance"}')
            await bus.publish(vllm_snapshot("http://a:8000"))
            await bus.publish(vllm_snapshot("http://b:8000"), encoding="json")

            async def both_up() -> bool:
                body = await get_text(agg.url + "/metrics")
                return all(
                    metric(body, "inferwatch_vllm_up", target=t) == 1 for t in ("http://a:8000", "http://b:8000")
                )

            await wait_until(both_up, timeout=5, what="both vLLM sources on /metrics")
            body = await get_text(agg.url + "/metrics")
            assert (
                metric(body, "inferwatch_aggregator_decode_errors_total", subject_prefix="inferwatch.v1.vllm.instance")
                == 2
            )
            assert metric(body, "inferwatch_source_up", domain="vllm", source="http://a:8000") == 1
            assert metric(body, "inferwatch_aggregator_events_total", domain="vllm", kind="instance") == 2
            # the aggregator's own heartbeat arrives through the same bus
            await wait_until(lambda: _has_service(agg.url, "aggregator"), timeout=5, what="aggregator heartbeat")
            # silence for 3 intervals -> the source's series disappear, source_up drops to 0
            await wait_until(lambda: _gone(agg.url, "http://a:8000"), timeout=5, what="expiry of silent source")
            om = await get_text(agg.url + "/metrics", headers={"Accept": "application/openmetrics-text"})
            assert om.endswith("# EOF\n")
            async with httpx.AsyncClient() as client:
                assert (await client.get(agg.url + "/healthz")).status_code == 200
                assert (await client.get(agg.url + "/readyz")).json()["ready"] is True
        finally:
            await bus.close()


async def _has_service(url: str, service: str) -> bool:
    return metric(await get_text(url + "/metrics"), "inferwatch_service_ready", service=service) == 1


async def _gone(url: str, target: str) -> bool:
    body = await get_text(url + "/metrics")
    return (
        metric(body, "inferwatch_vllm_up", target=target) is None
        and metric(body, "inferwatch_source_up", domain="vllm", source=target) == 0
    )


async def test_nats_down_at_start_then_up_and_restarted_mid_run(private_nats: EmbeddedNats) -> None:
    url = private_nats.url
    private_nats.stop()  # NATS unreachable at start
    env = {"NATS_URL": url}
    async with running_service("aggregator", env, wait_ready=False) as agg, httpx.AsyncClient(timeout=2) as client:

        async def not_ready_with_reason() -> bool:
            r = await client.get(agg.url + "/readyz")
            return r.status_code == 503 and "NATS" in r.json()["reason"]

        await wait_until(not_ready_with_reason, timeout=5, what="/readyz explaining NATS is down")
        assert (await client.get(agg.url + "/healthz")).status_code == 200

        private_nats.start()
        await wait_until(lambda: _ready(client, agg.url), timeout=15, what="ready after NATS came up")

        bus = Bus(BusSettings(servers=(url,)), name="test-publisher")
        await bus.connect()
        sources = [f"http://vllm-{i}:8000" for i in range(5)]

        def all_up(version: str):  # type: ignore[no-untyped-def]
            async def check() -> bool:
                for s in sources:  # what the collectors keep doing: a snapshot per interval
                    await bus.publish(vllm_snapshot(s, interval_s=0.5, version=version))
                body = (await client.get(agg.url + "/metrics")).text
                return all(metric(body, "inferwatch_vllm_info", target=s, version=version) == 1 for s in sources)

            return check

        await wait_until(all_up("before"), timeout=5, what="all sources visible")
        private_nats.stop()  # NATS restarted mid-run, down longer than the sources' expiry (1.5 s)
        await asyncio.sleep(2.0)
        body = (await client.get(agg.url + "/metrics")).text
        assert all(metric(body, "inferwatch_source_up", source=s) == 0 for s in sources)
        private_nats.start()
        restarted = time.monotonic()
        await wait_until(all_up("after"), timeout=5, interval=0.1, what="all sources back within 5 s of NATS restart")
        recovered_in = time.monotonic() - restarted
        print(f"\nall sources back {recovered_in:.2f} s after NATS restarted")
        await bus.close()


async def _ready(client: httpx.AsyncClient, url: str) -> bool:
    return (await client.get(url + "/readyz")).status_code == 200


async def test_publish_while_disconnected_is_bounded_and_counted(private_nats: EmbeddedNats) -> None:
    bus = Bus(BusSettings(servers=(private_nats.url,), pending_bytes=4096), name="bounded")
    await bus.connect()
    private_nats.stop()
    await wait_until(lambda: not bus.connected, timeout=5, what="client notices the outage")
    event = Heartbeat(
        source="x",
        observed_at=1,
        collector="x",
        interval_s=1,
        service="x",
        version="0",
        started_at=0,
        ready=True,
        reason="y" * 500,
    )
    results = [await bus.publish(event) for _ in range(50)]
    assert results.count(False) > 0, "a full buffer must drop, not grow"
    assert bus.stats.dropped == results.count(False)
    assert len(encode(event)) * results.count(True) <= 4096 + len(encode(event))
    await bus.close()


async def test_subject_for_matches_what_the_aggregator_subscribes(nats_url: str) -> None:
    bus = await publisher(nats_url)
    got: list[str] = []

    async def on_event(event: object, subject: str) -> None:
        got.append(subject)

    await bus.subscribe(subject_filter("vllm"), on_event)
    snap = vllm_snapshot("http://c:1")
    await bus.publish(snap)
    await wait_until(lambda: got, timeout=3, what="delivery")
    assert got == [subject_for(snap)]
    await bus.close()
    assert free_port() > 0
