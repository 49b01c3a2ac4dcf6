"""Container start → ``inferwatch_vllm_info`` visible on the aggregator: p50/p99 latency.

Runs a nats-server, the fake Docker Engine (unix socket), docker-watcher, vllm-scraper (15 s interval,
sharding on) and the aggregator in one process, then starts ``--samples`` vLLM containers one by one
(each backed by a simulated vLLM server that is ready at once) and polls the aggregator's ``/metrics``
every 10 ms until the container's ``inferwatch_vllm_info`` series is there.

Baseline: Prometheus' Docker service discovery (``docker_sd_configs``) refreshes every 60 s by
default, then the target waits for its first scrape (scrape interval 15 s): a container start
becomes visible after U(0, 60) + U(0, 15) s, i.e. p50 ≈ 37.5 s, p99 ≈ 71 s (computed, not measured:
measuring it needs minutes per sample).

    .venv/bin/python -m bench.bench_freshness --samples 30 [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import time

import httpx

from bench._common import percentile, report_goal, write_json
from inferwatch.services import spec
from inferwatch.shared.natsserver import EmbeddedNats
from inferwatch.shared.ports import free_port
from inferwatch.shared.service import run_service
from inferwatch.shared.settings import Env
from inferwatch.simulators.docker_engine import container_id, serve_backend, start_docker_demo, vllm_container
from inferwatch.simulators.vllm import SimulatedVllm, VllmGeneration

PROMETHEUS_SD_REFRESH_S = 60.0
PROMETHEUS_SCRAPE_S = 15.0


def prometheus_baseline(samples: int = 200_000) -> tuple[float, float]:
    """p50/p99 of U(0, 60) + U(0, 15) seconds (docker_sd refresh, then the first scrape)."""
    rng = random.Random(1)
    values = [rng.uniform(0, PROMETHEUS_SD_REFRESH_S) + rng.uniform(0, PROMETHEUS_SCRAPE_S) for _ in range(samples)]
    return percentile(values, 0.5), percentile(values, 0.99)


async def _service(name: str, env: dict[str, str]) -> tuple[asyncio.Task[None], str]:
    port = free_port()
    service = spec(name)
    full = {**env, service.port_variable: str(port)}
    task = asyncio.create_task(run_service(service, env=Env(full)))
    return task, f"http://127.0.0.1:{port}"


async def run(samples: int) -> list[float]:
    """Measure ``samples`` container starts."""
    latencies: list[float] = []
    with EmbeddedNats(jetstream=False) as nats:
        demo = await start_docker_demo([], extra_containers=True)
        env = {
            "NATS_URL": nats.url,
            "DOCKER_HOST": demo.docker_host,
            "INFERWATCH_DOCKER_HOST_NAME": "bench",
            "INFERWATCH_VLLM_INTERVAL_S": "15",
            "INFERWATCH_DOCKER_INTERVAL_S": "15",
            "INFERWATCH_LOG_LEVEL": "warning",
            "INFERWATCH_HEARTBEAT_INTERVAL_S": "1",
        }
        tasks = []
        agg_task, agg_url = await _service("aggregator", env)
        tasks.append(agg_task)
        for name in ("vllm-scraper", "docker-watcher"):
            tasks.append((await _service(name, env))[0])
        backends = []
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:  # everything up and the scraper past its shard warm-up
                    with contextlib.suppress(httpx.HTTPError):
                        body = (await client.get(agg_url + "/metrics")).text
                        if 'container="postgres"' in body:
                            break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(3)
                for i in range(samples):
                    name = f"vllm-bench-{i}"
                    backend = await serve_backend(
                        SimulatedVllm(f"m{i}", f"org/m{i}", VllmGeneration.V1, "0.33.0", seed=i)
                    )
                    backends.append(backend)
                    port = int(backend.url.rsplit(":", 1)[1])
                    container = demo.engine.add(
                        vllm_container(
                            name,
                            "vllm/vllm-openai:v0.33.0",
                            port,
                            model=f"org/m{i}",
                            served_name=f"m{i}",
                            gpus=[str(i % 8)],
                        )
                    )
                    needle = f'container="{name}"'
                    started = time.perf_counter()
                    demo.engine.start(container.id)
                    while True:
                        body = (await client.get(agg_url + "/metrics")).text
                        if any(
                            line.startswith("inferwatch_vllm_info{") and needle in line for line in body.splitlines()
                        ):
                            break
                        if time.perf_counter() - started > 30:
                            raise RuntimeError(f"{name} never appeared")
                        await asyncio.sleep(0.01)
                    latencies.append(time.perf_counter() - started)
                    demo.engine.kill(container_id(name))
                    backend.current.dead = True
                    await asyncio.sleep(0.2)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for backend in backends:
                if backend.runner is not None:
                    await backend.runner.cleanup()
            await demo.stop()
    return latencies


def main(argv: list[str] | None = None) -> None:
    """Run and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    latencies = asyncio.run(run(args.samples))
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    base50, base99 = prometheus_baseline()
    result = {
        "samples": len(latencies),
        "p50_s": round(p50, 4),
        "p99_s": round(p99, 4),
        "mean_s": round(statistics.fmean(latencies), 4),
        "max_s": round(max(latencies), 4),
        "prometheus_docker_sd_p50_s_computed": round(base50, 1),
        "prometheus_docker_sd_p99_s_computed": round(base99, 1),
        "speedup_p50": round(base50 / p50, 1),
        "speedup_p99": round(base99 / p99, 1),
        "goal_p99_s": 1.0,
    }
    print(f"container start -> inferwatch_vllm_info on the aggregator, {len(latencies)} starts:")
    print(f"  p50 {p50 * 1000:.0f} ms  p99 {p99 * 1000:.0f} ms  max {max(latencies) * 1000:.0f} ms (goal p99 <= 1 s)")
    print(
        f"  Prometheus docker_sd baseline (computed: 60 s refresh + 15 s scrape): p50 {base50:.1f} s, "
        f"p99 {base99:.1f} s -> ratio {base50 / p50:.0f}x (p50), {base99 / p99:.0f}x (p99)"
    )
    report_goal("freshness", p99 * 1e3, f"p50 {p50 * 1e3:.0f} ms")
    print(f"wrote {write_json('freshness', result, args.json)}")


if __name__ == "__main__":
    main()
