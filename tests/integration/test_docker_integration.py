"""docker-watcher for real: fake Docker Engine on a unix socket → docker-watcher → NATS → vllm-scraper → aggregator."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable

import aiodocker
import pytest

from inferwatch.simulators.docker_engine import FakeContainer, container_id, serve_engine, start_docker_demo
from inferwatch.simulators.vllm import SimulatedVllm, VllmGeneration
from tests.support import get_text, running_service, wait_until

pytestmark = pytest.mark.timeout(60)


def specs(tag: str) -> list[tuple[str, str, SimulatedVllm, dict[str, object]]]:
    return [
        (
            f"vllm-new-{tag}",
            "vllm/vllm-openai:v0.33.0",
            SimulatedVllm("qwen3-8b", "Qwen/Qwen3-8B", VllmGeneration.V1, "0.33.0", engines=2, seed=1),
            {"served_name": "qwen3-8b", "gpus": ["0", "1"]},
        ),
        (
            f"vllm-old-{tag}",
            "vllm/vllm-openai:v0.5.3.post1",
            SimulatedVllm(
                "llama-2-13b-chat", "meta-llama/Llama-2-13b-chat-hf", VllmGeneration.V0_5, "0.5.3.post1", seed=2
            ),
            {"served_name": "llama-2-13b-chat", "gpus": ["2"], "modern": False},
        ),
    ]


def series(body: str, name: str, **labels: str) -> list[str]:
    """Sample lines of ``name`` whose labels include ``labels``."""
    out = []
    for line in body.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            out.append(line)
    return out


def value(line: str) -> float:
    return float(line.rsplit(" ", 1)[1])


async def test_containers_and_vllm_series_end_to_end(nats_url: str) -> None:
    tag = uuid.uuid4().hex[:6]
    demo = await start_docker_demo(specs(tag))
    host = f"test-host-{tag}"
    env = {
        "NATS_URL": nats_url,
        "DOCKER_HOST": demo.docker_host,
        "INFERWATCH_DOCKER_HOST_NAME": host,
        "INFERWATCH_DOCKER_INTERVAL_S": "1",
        "INFERWATCH_DOCKER_RESYNC_S": "2",
        "INFERWATCH_VLLM_INTERVAL_S": "1",
        "INFERWATCH_VLLM_SHARD": "0",
        "INFERWATCH_VLLM_SPREAD": "0",
        "INFERWATCH_AGGREGATOR_SWEEP_INTERVAL_S": "0.2",
        "INFERWATCH_AGGREGATOR_TOMBSTONE_S": "1",
    }
    new_id = container_id(f"vllm-new-{tag}")
    try:
        async with (
            running_service("aggregator", env) as agg,
            running_service("vllm-scraper", env),
            running_service("docker-watcher", env),
        ):
            url = agg.url + "/metrics"

            async def body_with(pattern: str) -> str | None:
                body = await get_text(url)
                return body if re.search(pattern, body) else None

            body = await wait_until(
                lambda: body_with(
                    rf'inferwatch_vllm_info\{{[^}}]*container="vllm-old-{tag}"[^}}]*version="0.5.3.post1"'
                ),
                timeout=15,
                what="vLLM info joined to the old container",
            )
            assert body is not None
            new_info = series(body, "inferwatch_container_info", host=host, container=f"vllm-new-{tag}")
            assert len(new_info) == 1
            assert 'kind="vllm"' in new_info[0]
            assert 'gpus="0,1"' in new_info[0]
            assert 'vllm_version="0.33.0"' in new_info[0]
            postgres = series(body, "inferwatch_container_info", host=host, container="postgres")
            assert len(postgres) == 1
            assert 'kind=""' in postgres[0]
            assert not series(body, "inferwatch_vllm_info", container="postgres")
            assert (
                value(series(body, "inferwatch_container_state", host=host, container="postgres", state="running")[0])
                == 1.0
            )
            body = await wait_until(
                lambda: body_with(rf'inferwatch_vllm_info\{{[^}}]*container="vllm-new-{tag}"[^}}]*gpus="0,1"'),
                timeout=10,
                what="new container's vLLM info",
            )
            engines = {
                m
                for m in re.findall(
                    r'engine="(\d)"',
                    "\n".join(series(body, "inferwatch_vllm_requests_running", container=f"vllm-new-{tag}")),
                )
            }
            assert engines == {"0", "1"}
            assert "HF_TOKEN" not in body
            assert "hf_demo_secret" not in body

            # A failure signature in the log is counted per container and kind.
            await wait_until(
                lambda: len(demo.engine.containers[new_id].log_queues) > 0, timeout=5, what="log follower attached"
            )
            demo.engine.log(new_id, "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
            await wait_until(
                lambda: body_with(
                    rf'inferwatch_container_log_signatures_total\{{[^}}]*container="vllm-new-{tag}"'
                    r'[^}]*signature="cuda_oom"\} 1'
                ),
                timeout=5,
                what="cuda_oom counted",
            )

            # Killing a container: state exited, die counted, its vLLM series gone within 3 intervals.
            killed_at = time.monotonic()
            demo.kill(new_id)
            await wait_until(
                lambda: body_with(
                    rf'inferwatch_container_state\{{[^}}]*container="vllm-new-{tag}"[^}}]*state="exited"\}} 1'
                ),
                timeout=5,
                what="exited state",
            )
            body = await wait_until(
                lambda: body_with(
                    rf'inferwatch_container_lifecycle_events_total\{{[^}}]*container="vllm-new-{tag}"'
                    r'[^}]*action="die"\} 1'
                ),
                timeout=5,
                what="die counted",
            )

            async def vllm_gone() -> bool:
                return not series(await get_text(url), "inferwatch_vllm_up", container=f"vllm-new-{tag}")

            await wait_until(vllm_gone, timeout=6, what="killed container's vLLM series gone")
            assert time.monotonic() - killed_at < 6.0

            # Restarted: found again, loads, becomes ready, restart count visible.
            demo.restart(new_id, load_seconds=1.0)
            await wait_until(
                lambda: body_with(
                    rf'inferwatch_vllm_model_status\{{[^}}]*container="vllm-new-{tag}"[^}}]*status="ready"\}} 1'
                ),
                timeout=10,
                what="restarted container ready again",
            )
            body = await get_text(url)
            assert value(series(body, "inferwatch_container_restarts", container=f"vllm-new-{tag}")[0]) == 1.0
    finally:
        await demo.stop()


async def test_docker_socket_loss_resync_no_ghosts(nats_url: str) -> None:
    tag = uuid.uuid4().hex[:6]
    demo = await start_docker_demo(specs(tag)[:1])
    host = f"test-host-{tag}"
    env = {
        "NATS_URL": nats_url,
        "DOCKER_HOST": demo.docker_host,
        "INFERWATCH_DOCKER_HOST_NAME": host,
        "INFERWATCH_DOCKER_INTERVAL_S": "0.5",
        "INFERWATCH_DOCKER_RESYNC_S": "1",
        "INFERWATCH_DOCKER_MAX_BACKOFF_S": "0.5",
        "INFERWATCH_AGGREGATOR_SWEEP_INTERVAL_S": "0.2",
    }
    runner = demo.runner
    try:
        async with (
            running_service("aggregator", env) as agg,
            running_service("docker-watcher", env) as watcher,
        ):
            url = agg.url + "/metrics"

            async def containers() -> set[str]:
                body = await get_text(url)
                return {
                    m
                    for m in re.findall(
                        r'container="([^"]+)"', "\n".join(series(body, "inferwatch_container_info", host=host))
                    )
                }

            await wait_until(
                lambda: _eq(containers(), {f"vllm-new-{tag}", "postgres", "redis"}),
                timeout=10,
                what="initial containers",
            )
            # The daemon goes away; meanwhile redis is removed and a new container appears, no events seen.
            await demo.engine.close_streams()
            await runner.cleanup()
            await wait_until(lambda: _not_ready(watcher.url), timeout=5, what="watcher notices the lost socket")
            del demo.engine.containers[container_id("redis")]
            fresh = FakeContainer(
                id=container_id(f"web-{tag}"),
                name=f"web-{tag}",
                image="nginx:1.27",
                entrypoint=["nginx"],
                cmd=["-g", "daemon off;"],
            )
            demo.engine.containers[fresh.id] = fresh
            demo.engine.start(fresh.id)
            demo.runner = await serve_engine(demo.engine, demo.socket_path)
            await wait_until(
                lambda: _eq(containers(), {f"vllm-new-{tag}", "postgres", f"web-{tag}"}),
                timeout=10,
                what="resynced container set without ghosts",
            )
            docker = aiodocker.Docker(url=demo.docker_host)
            try:
                assert {c.id for c in await docker.containers.list(all=True)} == set(demo.engine.containers)
            finally:
                await docker.close()
    finally:
        await demo.stop()


async def test_one_container_that_cannot_be_inspected_does_not_blind_the_host(nats_url: str) -> None:
    """A 500 on one container's inspect (a container mid-removal, a corrupt config) is counted and skipped."""
    tag = uuid.uuid4().hex[:6]
    demo = await start_docker_demo(specs(tag)[:1])
    broken = FakeContainer(
        id=container_id(f"broken-{tag}"),
        name=f"broken-{tag}",
        image="busybox:1.36",
        inspect_error="json: cannot unmarshal config",
    )
    demo.engine.containers[broken.id] = broken
    demo.engine.start(broken.id)
    host = f"test-host-{tag}"
    env = {
        "NATS_URL": nats_url,
        "DOCKER_HOST": demo.docker_host,
        "INFERWATCH_DOCKER_HOST_NAME": host,
        "INFERWATCH_DOCKER_INTERVAL_S": "0.5",
        "INFERWATCH_DOCKER_RESYNC_S": "1",
        "INFERWATCH_AGGREGATOR_SWEEP_INTERVAL_S": "0.2",
    }
    try:
        async with (
            running_service("aggregator", env) as agg,
            running_service("docker-watcher", env) as watcher,
        ):

            async def containers() -> set[str]:
                body = await get_text(agg.url + "/metrics")
                return set(
                    re.findall(r'container="([^"]+)"', "\n".join(series(body, "inferwatch_container_info", host=host)))
                )

            await wait_until(
                lambda: _eq(containers(), {f"vllm-new-{tag}", "postgres", "redis"}),
                timeout=10,
                what="every inspectable container, despite the broken one",
            )
            own = await get_text(watcher.url + "/metrics")
            refused = [
                line
                for line in own.splitlines()
                if line.startswith('inferwatch_docker_inspect_failures_total{status="500"}')
            ]
            assert refused
            assert value(refused[0]) >= 1
            # the session survived: a container started afterwards still arrives through the event stream
            fresh = FakeContainer(
                id=container_id(f"web-{tag}"), name=f"web-{tag}", image="nginx:1.27", entrypoint=["nginx"]
            )
            demo.engine.containers[fresh.id] = fresh
            demo.engine.start(fresh.id)
            await wait_until(
                lambda: _eq(containers(), {f"vllm-new-{tag}", "postgres", "redis", f"web-{tag}"}),
                timeout=10,
                what="a later container",
            )
            # the broken container recovers: it shows up on the next resync
            broken.inspect_error = ""
            await wait_until(
                lambda: _eq(containers(), {f"vllm-new-{tag}", "postgres", "redis", f"web-{tag}", f"broken-{tag}"}),
                timeout=10,
                what="the repaired container",
            )
    finally:
        await demo.stop()


async def _eq(coro: Awaitable[set[str]], expected: set[str]) -> bool:
    return await coro == expected


async def _not_ready(url: str) -> bool:
    import httpx

    async with httpx.AsyncClient(timeout=1) as client:
        return (await client.get(url + "/readyz")).status_code == 503


async def test_no_docker_idles_ready_and_bad_socket_does_not_crash(nats_url: str, tmp_path: object) -> None:
    import httpx

    async with running_service("docker-watcher", {"NATS_URL": nats_url}) as idle:
        async with httpx.AsyncClient(timeout=2) as client:
            body = (await client.get(idle.url + "/readyz")).json()
        if body["ready"]:  # this machine has no Docker socket: idle, saying so
            assert body["reason"].startswith("idle: no Docker socket")
    env = {
        "NATS_URL": nats_url,
        "DOCKER_HOST": f"unix://{tmp_path}/missing.sock",
        "INFERWATCH_DOCKER_MAX_BACKOFF_S": "0.2",
    }
    async with running_service("docker-watcher", env, wait_ready=False) as broken:
        await wait_until(lambda: _not_ready(broken.url), timeout=5, what="not ready while Docker is unreachable")
        assert not broken.task.done()  # retrying, not dead
        assert await get_text(broken.url + "/healthz")
