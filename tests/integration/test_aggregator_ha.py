"""Two aggregators on a 3-node cluster, one SIGKILLed mid-incident: the alert stream holds each transition once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from inferwatch.contracts import decode
from inferwatch.contracts.alert import Alert
from inferwatch.contracts.vllm import VllmInstanceSnapshot
from inferwatch.services.aggregator.rule_engine import DEFAULT_RULES_FILE
from inferwatch.shared.bus import Bus, BusSettings
from inferwatch.shared.natsserver import NatsCluster, find_binary
from tests.support import free_port, get_text, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

STREAM = "INFERWATCH_ALERTS"
INCIDENTS = 8
KILL_DURING = 4  # the replica dies after this incident fired, before it resolves


@pytest.fixture
def cluster() -> Iterator[NatsCluster]:
    if not find_binary():
        pytest.skip("nats-server binary not installed")
    with NatsCluster(3) as c:
        yield c


def _rules(path: Path) -> Path:
    (rule,) = [r for r in yaml.safe_load(DEFAULT_RULES_FILE.read_text())["rules"] if r["alert"] == "VllmTargetDown"]
    rule["for"] = "0s"
    path.write_text(yaml.safe_dump({"rules": [rule]}))
    return path


def _snapshot(target: str, up: bool) -> VllmInstanceSnapshot:
    return VllmInstanceSnapshot(
        source=target, observed_at=time.time(), collector="ha-test", interval_s=60.0, up=up, error="" if up else "x"
    )


def _aggregator(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "inferwatch", "run", "aggregator"],
        env={**env, "INFERWATCH_AGGREGATOR_HTTP_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _same_series(ports: list[int]) -> bool:
    """Whether both replicas serve the same vLLM series (their own self-metrics and heartbeats aside)."""
    bodies = [await get_text(f"http://127.0.0.1:{port}/metrics") for port in ports]
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
        "INFERWATCH_AGGREGATOR_RULES_FILE": str(_rules(tmp_path / "rules.yaml")),
        "INFERWATCH_AGGREGATOR_ALERTS_TICK_S": "0.1",
        "INFERWATCH_LOG_LEVEL": "warning",
    }
    ports = [free_port(), free_port()]
    replicas = [_aggregator(env, port) for port in ports]
    bus = Bus(BusSettings(servers=tuple(cluster.urls)), name="ha-test")
    await bus.connect()
    try:
        for port in ports:

            async def ready(p: int = port) -> bool:
                try:
                    return '"ready": true' in await get_text(f"http://127.0.0.1:{p}/readyz")
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
                await wait_until(lambda: _same_series(ports), timeout=5, what="both replicas serving the same series")
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
        for proc in replicas:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
