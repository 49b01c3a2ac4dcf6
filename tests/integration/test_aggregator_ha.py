"""Two aggregators on a 3-node cluster, one SIGKILLed mid-incident: the alert stream holds each transition once."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from inferwatch.contracts import decode
from inferwatch.contracts.alert import Alert
from inferwatch.contracts.vllm import VllmInstanceSnapshot
from inferwatch.shared.bus import Bus, BusSettings
from inferwatch.shared.natsserver import NatsCluster
from tests.support import get_text, service_process, stop_processes, wait_until
from tests.support.aggregator import write_fast_rules

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

STREAM = "INFERWATCH_ALERTS"
INCIDENTS = 8
KILL_DURING = 4  # the replica dies after this incident fired, before it resolves


def _snapshot(target: str, up: bool) -> VllmInstanceSnapshot:
    return VllmInstanceSnapshot(
        source=target, observed_at=time.time(), collector="ha-test", interval_s=60.0, up=up, error="" if up else "x"
    )


async def _same_series(urls: list[str]) -> bool:
    """Whether both replicas serve the same vLLM series (their own self-metrics and heartbeats aside)."""
    bodies = [await get_text(url + "/metrics") for url in urls]
    series = [{line for line in body.splitlines() if line.startswith("inferwatch_vllm_")} for body in bodies]
    return bool(series[0]) and series[0] == series[1]


async def _stream(bus: Bus) -> list[Alert]:
    js = bus.client.jetstream()
    info = await js.stream_info(STREAM)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        event = decode((await js.get_msg(STREAM, seq)).data or b"")
        assert isinstance(event, Alert)
        out.append(event)
    return out


async def test_each_transition_once_with_a_replica_killed_mid_incident(cluster: NatsCluster, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "NATS_URL": ",".join(cluster.urls),
        "INFERWATCH_AGGREGATOR_ALERT_STREAM": STREAM,
        "INFERWATCH_AGGREGATOR_RULES_FILE": str(write_fast_rules(tmp_path / "rules.yaml", "VllmTargetDown")),
        "INFERWATCH_AGGREGATOR_ALERTS_TICK_S": "0.1",
        "INFERWATCH_LOG_LEVEL": "warning",
    }
    started = [service_process("aggregator", env) for _ in range(2)]
    replicas, urls = [proc for proc, _ in started], [url for _, url in started]
    bus = Bus(BusSettings(servers=tuple(cluster.urls)), name="ha-test")
    await bus.connect()
    try:
        for url in urls:

            async def ready(u: str = url) -> bool:
                try:
                    return '"ready": true' in await get_text(u + "/readyz")
                except Exception:
                    return False

            await wait_until(ready, timeout=30, what="both aggregators ready")
        await asyncio.sleep(1)  # both have opened the stream and subscribed

        async def stored(count: int) -> bool:
            try:
                return len(await _stream(bus)) >= count
            except Exception:
                return False

        transitions = 0
        for i in range(INCIDENTS):
            target = f"http://vllm-{i}:8000"
            await bus.publish(_snapshot(target, up=False))
            transitions += 1
            await wait_until(lambda n=transitions: stored(n), timeout=10, what=f"incident {i} firing in the stream")
            if i == KILL_DURING:
                await wait_until(lambda: _same_series(urls), timeout=5, what="both replicas serving the same series")
                replicas[0].send_signal(signal.SIGKILL)
                replicas[0].wait(5)
            await bus.publish(_snapshot(target, up=True))
            transitions += 1
            await wait_until(lambda n=transitions: stored(n), timeout=10, what=f"incident {i} resolved in the stream")
        await asyncio.sleep(1)  # a late duplicate would land here

        alerts = await _stream(bus)
        seen = [(a.labels["target"], a.state) for a in alerts]
        expected = [(f"http://vllm-{i}:8000", s) for i in range(INCIDENTS) for s in ("firing", "resolved")]
        assert sorted(seen) == sorted(expected), "each firing and resolve exactly once"
        assert replicas[1].poll() is None
    finally:
        await bus.close()
        stop_processes(replicas)
