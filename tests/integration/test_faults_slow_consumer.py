"""A slow consumer: the aggregator frozen for 10 s (SIGSTOP) while a publisher sends ~50k events/s.

What happens then is nats-server's business first: a client that reads nothing for longer than the
server's write deadline, or whose outbound buffer passes ``max_pending``, is disconnected as a slow
consumer (server side, counted in ``/varz``). nats-py's own slow-consumer drop (a subscription whose
pending queue is full while the client still reads) is the other path; it is exercised in process.
Either way the aggregator must come back by itself, with bounded memory, and say what it lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from inferwatch.services.aggregator.app import Aggregator
from inferwatch.services.aggregator.config import AggregatorConfig
from inferwatch.shared.bus import Bus, BusSettings
from inferwatch.shared.natsserver import EmbeddedNats, find_binary
from tests.support import ROOT, free_port, get_text, wait_until
from tests.support.flood import heartbeat_flood

RATE = 50_000  # events per second
PAUSE_S = 10.0


def _publisher(url: str, seconds: float, sent: Any) -> None:
    """Publish RATE events/s for ``seconds``, in 10 ms batches (a separate process, as a collector is)."""
    import nats

    async def run() -> None:
        nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
        payloads = heartbeat_flood()
        batch = RATE // 100
        start = time.monotonic()
        n = 0
        while (elapsed := time.monotonic() - start) < seconds:
            target = int(elapsed * RATE) + batch
            while n < target:
                await nc.publish(*payloads[n % 1000])
                n += 1
            await asyncio.sleep(0.01)
        await nc.flush(timeout=30)
        sent.value = n
        await nc.close()

    asyncio.run(run())


def _rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _metric(body: str, prefix: str) -> float:
    values = [float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(prefix)]
    return sum(values)


@pytest.fixture
def monitored_nats() -> Iterator[tuple[str, int]]:
    """A private nats-server with its monitoring port (``/varz`` counts slow consumers)."""
    if not find_binary():
        pytest.skip("nats-server binary not installed")
    monitor = free_port()
    server = EmbeddedNats(jetstream=False, extra_args=("-m", str(monitor)))
    server.start()
    try:
        yield server.url, monitor
    finally:
        server.close()


def _varz(monitor: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/varz", timeout=5) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_frozen_aggregator_recovers_with_bounded_memory(monitored_nats: tuple[str, int]) -> None:
    url, monitor = monitored_nats
    port = free_port()
    env = {
        **os.environ,
        "NATS_URL": url,
        "INFERWATCH_AGGREGATOR_HTTP_PORT": str(port),
        "PYTHONPATH": str(ROOT),
        "INFERWATCH_LOG_LEVEL": "warning",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "inferwatch",
        "run",
        "aggregator",
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    agg = f"http://127.0.0.1:{port}"
    publisher = None
    try:

        async def ready() -> bool:
            with contextlib.suppress(Exception):
                await get_text(agg + "/readyz")
                return True
            return False

        await wait_until(ready, timeout=20, what="aggregator ready")
        sent = mp.get_context("spawn").Value("q", 0)
        publisher = mp.get_context("spawn").Process(target=_publisher, args=(url, PAUSE_S + 6, sent))
        publisher.start()
        await wait_until(
            lambda: _metric_sync(agg, "inferwatch_aggregator_events_total") > 10_000,
            timeout=20,
            what="the flood arriving",
        )
        before = await get_text(agg + "/metrics")
        rss_before = _rss_kb(proc.pid)
        os.kill(proc.pid, signal.SIGSTOP)  # frozen: reads nothing, answers nothing
        try:
            await asyncio.sleep(PAUSE_S)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        rss_samples = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 8
        while loop.time() < deadline:
            rss_samples.append(_rss_kb(proc.pid))
            await asyncio.sleep(0.25)
        await asyncio.to_thread(publisher.join, 60)
        await wait_until(ready, timeout=30, what="aggregator ready again")
        events_before = _metric(before, "inferwatch_aggregator_events_total")

        async def ingesting_again() -> str | None:
            body = await get_text(agg + "/metrics")
            return body if _metric(body, "inferwatch_aggregator_events_total") > events_before + 10_000 else None

        after = await wait_until(ingesting_again, timeout=30, what="events counted after the pause")
        peak_kb = _rss_kb(proc.pid, "VmHWM")
        varz = _varz(monitor)
    finally:
        if publisher is not None and publisher.is_alive():
            publisher.kill()
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    received = _metric(after, "inferwatch_aggregator_events_total")
    client_drops = _metric(after, 'inferwatch_aggregator_dropped_total{reason="slow_consumer"}')
    print(
        f"\nsent={sent.value} received={received:.0f} rss_before={rss_before // 1024}MiB "
        f"rss_after_max={max(rss_samples) // 1024}MiB peak={peak_kb // 1024}MiB "
        f"server_slow_consumers={varz.get('slow_consumers')} client_slow_consumer_drops={client_drops:.0f} "
        f"disconnects={_metric(after, 'inferwatch_aggregator_nats_disconnects_total'):.0f}"
    )
    assert 'inferwatch_aggregator_dropped_total{reason="slow_consumer"}' in after  # the counter is exported
    assert "inferwatch_aggregator_nats_connected 1" in after
    assert peak_kb < 512 * 1024, peak_kb  # bounded: nats-py's pending limits, not the backlog, set the ceiling
    # the loss is visible on our own /metrics: the server cut the slow consumer (a disconnect we count),
    # or nats-py dropped for it, or nothing was lost
    disconnects = _metric(after, "inferwatch_aggregator_nats_disconnects_total")
    if varz.get("slow_consumers", 0) > 0:
        assert disconnects > 0, "the server cut us as a slow consumer but no disconnect was counted"
    assert disconnects > 0 or client_drops > 0 or received >= sent.value


def _metric_sync(base: str, prefix: str) -> float:
    with contextlib.suppress(OSError), urllib.request.urlopen(base + "/metrics", timeout=2) as response:
        return _metric(response.read().decode(), prefix)
    return 0.0


@pytest.mark.timeout(90)
async def test_nats_py_slow_consumer_drops_are_counted_and_exported(nats_url: str) -> None:
    # the client-side path: the subscription callback is stuck while the client keeps reading, so nats-py's
    # pending queue (512k messages) fills and every message beyond it is dropped with SlowConsumerError
    bus = Bus(BusSettings(servers=(nats_url,)), name="slow-sub")
    await bus.connect()
    gate = asyncio.Event()
    subject = f"inferwatch.test.slow.{os.getpid()}.{time.monotonic_ns()}"

    async def stuck(_: Any) -> None:
        await gate.wait()

    sub = await bus.subscribe_raw(subject, stuck)
    aggregator = Aggregator(AggregatorConfig(), ctx=SimpleNamespace(bus=bus))  # type: ignore[arg-type]
    publisher = Bus(BusSettings(servers=(nats_url,)), name="slow-pub")
    await publisher.connect()
    try:
        total = 512 * 1024 + 20_000
        for i in range(total):
            await publisher.client.publish(subject, b"x")
            if i % 50_000 == 0:
                await asyncio.sleep(0)  # let the subscriber's reader run
        await publisher.client.flush(timeout=60)
        await wait_until(lambda: bus.stats.slow_consumer_drops > 0, timeout=30, what="nats-py slow consumer drops")
        gate.set()
        drops = bus.stats.slow_consumer_drops
        exported = {family.name: chunk for family, chunk in aggregator.self_metrics().items()}
    finally:
        await sub.unsubscribe()
        await publisher.close()
        await bus.close()
    assert drops >= 1
    line = [x for x in exported["inferwatch_aggregator_dropped"].splitlines() if 'reason="slow_consumer"' in x]
    assert line
    assert float(line[0].rsplit(" ", 1)[1]) == drops
