"""The aggregator's ingest thread: events arrive on a connection and event loop of their own, under the state lock,
and the service's event loop (HTTP, sweeps, alert dispatch) does not wait behind an ingest backlog."""

from __future__ import annotations

import asyncio
import threading
import time

from nats.aio.msg import Msg

from inferwatch.services.aggregator.ingest import IngestThread, RenderGate
from inferwatch.shared.bus import Bus, BusSettings
from tests.support import free_port, get_text, running_service, wait_until
from tests.support.aggregator import vllm_snapshot
from tests.support.flood import heartbeat_flood

BACKLOG = 20
HANDLER_S = 0.2  # per message: a backlog of 4 s on the ingest thread
GATED = 2_000  # messages published while a request holds the gate
FLOOD = 20_000  # heartbeats published while /metrics is scraped back to back


async def test_event_loop_runs_while_the_ingest_thread_works_through_a_backlog(nats_url: str) -> None:
    lock = threading.Lock()
    handled: list[str] = []
    held: list[bool] = []
    threads: set[str] = set()

    def slow(msg: Msg) -> None:
        held.append(lock.locked())
        threads.add(threading.current_thread().name)
        time.sleep(HANDLER_S)  # on purpose: it blocks the ingest loop only
        handled.append(msg.subject)

    ingest = IngestThread(BusSettings(servers=(nats_url,)), "test-ingest", "test.ingest.backlog", slow, lock)
    await ingest.start()
    publisher = Bus(BusSettings(servers=(nats_url,)), name="test-ingest-publisher")
    await publisher.connect()
    try:
        for i in range(BACKLOG):
            await publisher.publish_raw("test.ingest.backlog", str(i).encode())
        await publisher.flush()
        await wait_until(lambda: handled, timeout=10, what="first message handled")
        ticks = 0
        while ticks < 10:  # on one shared loop these turns would wait for the whole backlog
            await asyncio.sleep(0.001)
            ticks += 1
        assert len(handled) < BACKLOG, "the event loop waited for the whole ingest backlog"
        await wait_until(lambda: len(handled) == BACKLOG, timeout=30, what="backlog handled")
    finally:
        await publisher.close()
        await ingest.stop()
    assert all(held), "the handler ran without the state lock"
    assert threads == {"aggregator-ingest"}
    assert not ingest.bus.connected  # stop() closed its connection


async def test_aggregator_ingests_on_its_thread_and_reports_that_connection(nats_url: str) -> None:
    env = {"NATS_URL": nats_url, "INFERWATCH_AGGREGATOR_INGEST_THREAD": "true"}
    async with running_service("aggregator", env) as svc:
        bus = Bus(BusSettings(servers=(nats_url,)), name="test-ingest-thread")
        await bus.connect()
        try:
            await bus.publish(vllm_snapshot(source="http://vllm-ingest-thread:8000"))
            await bus.flush()

            async def shown() -> bool:
                return 'source="http://vllm-ingest-thread:8000"' in await get_text(svc.url + "/metrics")

            await wait_until(shown, timeout=10, what="snapshot on /metrics")
            body = await get_text(svc.url + "/metrics")
            assert "inferwatch_aggregator_nats_connected 1" in body
        finally:
            await bus.close()


async def test_stop_while_the_ingest_thread_still_waits_for_nats() -> None:
    def never(msg: Msg) -> None:
        raise AssertionError("no server, no message")

    settings = BusSettings(servers=(f"nats://127.0.0.1:{free_port()}",))  # nothing listens there
    ingest = IngestThread(settings, "test-ingest-unreachable", "test.ingest.none", never, threading.Lock())
    starting = asyncio.create_task(ingest.start())
    await wait_until(lambda: "no server answers" in ingest.bus.status, timeout=10, what="connection retried")
    await ingest.stop()
    await asyncio.wait_for(starting, 10)  # start() returns once the thread has ended
    assert ingest.error is None
    assert not ingest.bus.connected


async def test_messages_that_arrive_while_a_request_holds_the_gate_wait_and_none_is_lost(nats_url: str) -> None:
    gate = RenderGate()
    handled: list[bytes] = []

    def record(msg: Msg) -> None:
        handled.append(msg.data)

    ingest = IngestThread(
        BusSettings(servers=(nats_url,)), "test-ingest-gate", "test.ingest.gate", record, threading.Lock(), gate=gate
    )
    await ingest.start()
    publisher = Bus(BusSettings(servers=(nats_url,)), name="test-ingest-gate-publisher")
    await publisher.connect()
    try:
        with gate.hold():  # a request being served
            for i in range(GATED):
                await publisher.publish_raw("test.ingest.gate", str(i).encode())
            await publisher.flush()
            await asyncio.sleep(0.2)
            assert len(handled) <= 1, "the ingest thread went on while a request was served"
        await wait_until(lambda: len(handled) == GATED, timeout=30, what="every message handled after the request")
    finally:
        await publisher.close()
        await ingest.stop()
    assert handled == [str(i).encode() for i in range(GATED)]
    assert gate.pauses >= 1
    assert ingest.bus.stats.slow_consumer_drops == 0


async def test_a_flood_with_scrapes_running_alongside_loses_no_event(nats_url: str) -> None:
    env = {
        "NATS_URL": nats_url,
        "INFERWATCH_AGGREGATOR_INGEST_THREAD": "true",
        "INFERWATCH_AGGREGATOR_RENDER_PRIORITY": "true",
        "INFERWATCH_AGGREGATOR_PRERENDER_S": "0.2",
        "INFERWATCH_HEARTBEAT_INTERVAL_S": "3600",  # none of its own: what is counted is the flood
    }
    payloads = heartbeat_flood(count=200)
    async with running_service("aggregator", env) as svc:
        bus = Bus(BusSettings(servers=(nats_url,)), name="test-ingest-flood")
        await bus.connect()
        scraping = True
        scrapes = 0

        async def scrape() -> None:
            nonlocal scrapes
            while scraping:
                await get_text(svc.url + "/metrics")
                scrapes += 1

        before = heartbeats_of(await get_text(svc.url + "/metrics"))
        scraper = asyncio.create_task(scrape())
        try:
            for i in range(FLOOD):
                subject, payload = payloads[i % len(payloads)]
                await bus.publish_raw(subject, payload)
            await bus.flush(timeout_s=30)

            async def all_in() -> bool:
                return heartbeats_of(await get_text(svc.url + "/metrics")) >= before + FLOOD

            await wait_until(all_in, timeout=60, what="every event of the flood")
        finally:
            scraping = False
            await scraper
            await bus.close()
        body = await get_text(svc.url + "/metrics")
    assert scrapes > 0
    assert heartbeats_of(body) == before + FLOOD
    assert 'inferwatch_aggregator_dropped_total{reason="slow_consumer"} 0' in body
    assert "inferwatch_aggregator_nats_disconnects_total 0" in body


def heartbeats_of(body: str) -> float:
    """The heartbeats the aggregator counts as ingested, from its ``/metrics``."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith('inferwatch_aggregator_events_total{domain="heartbeat"')
    )


async def test_a_changed_snapshot_reaches_metrics_when_no_message_follows_it(nats_url: str) -> None:
    env = {"NATS_URL": nats_url, "INFERWATCH_AGGREGATOR_PRERENDER_S": "0.2"}
    source = "http://vllm-prerender:8000"
    async with running_service("aggregator", env) as svc:
        bus = Bus(BusSettings(servers=(nats_url,)), name="test-ingest-prerender")
        await bus.connect()
        try:
            first = vllm_snapshot(source=source, observed_at=time.time(), container_name="before")
            await bus.publish(first)
            await bus.flush()

            async def shows(container: str) -> bool:
                return f'container="{container}"' in await get_text(svc.url + "/metrics")

            await wait_until(lambda: shows("before"), timeout=10, what="first snapshot on /metrics")
            # Observed 0.1 s later: within the 0.4 s a scrape may keep the body, so only the pre-render shows it.
            await bus.publish(vllm_snapshot(source=source, observed_at=first.observed_at + 0.1, container_name="after"))
            await bus.flush()
            await wait_until(lambda: shows("after"), timeout=10, what="the changed snapshot on /metrics")
        finally:
            await bus.close()


async def test_the_single_loop_aggregator_still_ingests_and_serves(nats_url: str) -> None:
    env = {"NATS_URL": nats_url, "INFERWATCH_AGGREGATOR_INGEST_THREAD": "0"}  # no gate, no pre-render
    async with running_service("aggregator", env) as svc:
        bus = Bus(BusSettings(servers=(nats_url,)), name="test-single-loop")
        await bus.connect()
        try:
            await bus.publish(vllm_snapshot(source="http://vllm-single-loop:8000", observed_at=time.time()))
            await bus.flush()

            async def shown() -> bool:
                return 'source="http://vllm-single-loop:8000"' in await get_text(svc.url + "/metrics")

            await wait_until(shown, timeout=10, what="snapshot on /metrics")
            assert '"ready": true' in await get_text(svc.url + "/readyz")
        finally:
            await bus.close()
