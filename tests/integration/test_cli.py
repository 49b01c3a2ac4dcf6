"""The `inferwatch` command as a user runs it: schema, tail, run."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

from inferwatch import __version__
from inferwatch.contracts.heartbeat import Heartbeat
from inferwatch.shared.bus import Bus, BusSettings

CLI = [sys.executable, "-m", "inferwatch"]


def test_schema_prints_json_schema_and_asyncapi() -> None:
    schema = json.loads(subprocess.run([*CLI, "schema"], capture_output=True, text=True, check=True).stdout)
    assert "VllmInstanceSnapshot" in schema["$defs"]
    doc = json.loads(
        subprocess.run([*CLI, "schema", "--format", "asyncapi"], capture_output=True, text=True, check=True).stdout
    )
    assert doc["channels"]["Heartbeat"]["address"] == "inferwatch.v2.heartbeat.{service}.{source}"


def test_version_is_the_package_version() -> None:
    result = subprocess.run([*CLI, "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"inferwatch {__version__}"


def test_run_help_lists_every_registered_service() -> None:
    from inferwatch.services import SERVICES

    result = subprocess.run([*CLI, "run", "--help"], capture_output=True, text=True, check=True)
    for service in SERVICES:
        assert service.name in result.stdout


def test_run_reports_a_bad_setting_and_exits_2() -> None:
    env = {**os.environ, "INFERWATCH_VLLM_INTERVAL_S": "often"}
    result = subprocess.run([*CLI, "run", "vllm-scraper"], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 2
    assert "INFERWATCH_VLLM_INTERVAL_S" in result.stderr


def test_run_rejects_unknown_service() -> None:
    result = subprocess.run([*CLI, "run", "nope"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "unknown service" in result.stderr


async def test_tail_prints_decoded_events(nats_url: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        "tail",
        "inferwatch.v2.heartbeat.svc.*",
        "--json",
        "--count",
        "1",
        env={**os.environ, "NATS_URL": nats_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    bus = Bus(BusSettings(servers=(nats_url,)), name="tail-test")
    await bus.connect()
    event = Heartbeat(
        source="svc@h:1",
        observed_at=time.time(),
        collector="svc@h:1",
        interval_s=5,
        service="svc",
        version="0",
        started_at=0,
        ready=True,
    )
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
    assert doc["subject"].startswith("inferwatch.v2.heartbeat.svc.")
    assert doc["event"]["type"] == "heartbeat.service"
    assert doc["event"]["service"] == "svc"
    assert proc.returncode == 0
