"""The `inferwatch` command as a user runs it: schema, tail, run."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

from contracts.heartbeat import Heartbeat
from services.cli import service_names
from shared.bus import Bus, BusSettings

CLI = [sys.executable, "-m", "services.cli"]


def test_schema_prints_json_schema_and_asyncapi() -> None:
    schema = json.loads(subprocess.run([*CLI, "schema"], capture_output=True, text=True, check=True).stdout)
    assert "VllmInstanceSnapshot" in schema["$defs"]
    doc = json.loads(subprocess.run([*CLI, "schema", "--format", "asyncapi"], capture_output=True, text=True,
                                    check=True).stdout)
    assert doc["channels"]["Heartbeat"]["address"] == "inferwatch.v1.heartbeat.service.{source}"


def test_service_names_are_discovered() -> None:
    assert {"aggregator", "vllm-scraper"} <= set(service_names())


def test_run_rejects_unknown_service() -> None:
    result = subprocess.run([*CLI, "run", "nope"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "unknown service" in result.stderr


async def test_tail_prints_decoded_events(nats_url: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *CLI, "tail", "inferwatch.v1.heartbeat.>", "--json", "--count", "1",
        env={**os.environ, "NATS_URL": nats_url}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    bus = Bus(BusSettings(servers=(nats_url,)), name="tail-test")
    await bus.connect()
    event = Heartbeat(source="svc@h:1", observed_at=time.time(), collector="svc@h:1", interval_s=5, service="svc",
                      version="0", started_at=0, ready=True)
    try:
        async def publish_until_done() -> bytes:
            while True:
                await bus.publish(event)
                try:
                    return await asyncio.wait_for(proc.stdout.readline(), 0.3)  # type: ignore[union-attr]
                except TimeoutError:
                    continue

        line = await asyncio.wait_for(publish_until_done(), 20)
    finally:
        await bus.close()
    await asyncio.wait_for(proc.wait(), 10)
    doc = json.loads(line)
    assert doc["subject"].startswith("inferwatch.v1.heartbeat.service.")
    assert doc["event"]["type"] == "heartbeat.service"
    assert doc["event"]["service"] == "svc"
    assert proc.returncode == 0
