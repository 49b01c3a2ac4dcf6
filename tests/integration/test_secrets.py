"""Secrets from settings never reach logs, events or metrics (services run with marker secrets)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from inferwatch.contracts.subjects import ALL
from inferwatch.services import SERVICES
from inferwatch.shared.bus import Bus, BusSettings
from inferwatch.simulators.docker_engine import FakeDockerEngine, serve_engine, vllm_container
from inferwatch.simulators.epp import EppSimulator
from inferwatch.simulators.huggingface import SimulatedHub
from inferwatch.simulators.huggingface import serve as serve_hub
from inferwatch.simulators.langfuse import SimulatedLangfuse, make_dataset
from inferwatch.simulators.litellm import SimulatedLitellm
from inferwatch.simulators.litellm import serve as serve_litellm
from inferwatch.simulators.vllm import SimulatedVllm, VllmGeneration, serve
from tests.support import free_port, get_text, running_service, wait_until

MARKERS = {
    "INFERWATCH_VLLM_API_KEY": "sk-MARKER-vllm-4f1c9e",
    "NATS_PASSWORD": "MARKER-nats-pw-77ab",
    "NATS_TOKEN": "MARKER-nats-token-9d2",
    "TARGET_URL_PASSWORD": "MARKER-url-pw-31c",  # not read by anything: carried in a target URL's userinfo
}


async def test_marker_secrets_appear_nowhere(nats_url: str, capfd: pytest.CaptureFixture[str]) -> None:
    sim = SimulatedVllm(model="m", root="org/m", generation=VllmGeneration.V1, version="0.33.0")
    [(good_url, runner)] = await serve([sim], api_key=MARKERS["INFERWATCH_VLLM_API_KEY"])
    wrong = SimulatedVllm(model="w", root="org/w", generation=VllmGeneration.V1, version="0.33.0")
    [(wrong_key_url, runner2)] = await serve([wrong], api_key="some-other-key-xyz")
    dead_url = f"http://127.0.0.1:{free_port()}"
    userinfo_url = f"http://scrape:{MARKERS['TARGET_URL_PASSWORD']}@127.0.0.1:{free_port()}/?token=x"
    events: list[bytes] = []
    listener = Bus(BusSettings(servers=(nats_url,)), name="secret-listener")
    await listener.connect()

    async def collect(msg: object) -> None:
        events.append(msg.data)  # type: ignore[attr-defined]

    await listener.subscribe_raw(ALL, collect)
    env = {
        "NATS_URL": nats_url,
        "NATS_USER": "svc",
        **MARKERS,
        "INFERWATCH_VLLM_TARGETS": f"{good_url},{wrong_key_url},{dead_url},{userinfo_url}",
        "INFERWATCH_VLLM_INTERVAL_S": "0.5",
        "INFERWATCH_LOG_LEVEL": "debug",
    }
    try:
        async with (
            running_service("aggregator", env) as agg,
            running_service("vllm-scraper", env) as scraper,
        ):

            async def models_seen() -> bool:
                return 'models="m"' in await get_text(agg.url + "/metrics")

            await wait_until(models_seen, timeout=10, what="the keyed /v1/models read")  # proves the key is used

            async def upstream_outcomes_seen() -> bool:
                body = await get_text(agg.url + "/metrics")
                return all(f'outcome="{o}"' in body for o in ("ok", "http_401", "connect_error"))

            # the scraper's upstream call stats reach the aggregator, failures labelled by outcome
            await wait_until(upstream_outcomes_seen, timeout=10, what="inferwatch_upstream_calls_total by outcome")
            await asyncio.sleep(1.2)  # a few more cycles of failures (401, refused) to log
            bodies = [await get_text(agg.url + "/metrics"), await get_text(scraper.url + "/metrics")]
            async with httpx.AsyncClient() as client:
                bodies.append((await client.get(scraper.url + "/readyz")).text)
    finally:
        await listener.close()
        await runner.cleanup()
        await runner2.cleanup()
    out, err = capfd.readouterr()
    assert events, "no events were captured"
    assert "vllm-scraper" in err  # the services did log
    for name, marker in MARKERS.items():
        for i, data in enumerate(events):
            assert marker.encode() not in data, f"{name} in event {i}"
        for body in bodies:
            assert marker not in body, name
        assert marker not in out, f"{name} in stdout"
        assert marker not in err, f"{name} in logs"


EVERY_SERVICE_MARKERS = {
    "INFERWATCH_VLLM_API_KEY": "sk-MARKER-vllm-every-31d",
    "INFERWATCH_LITELLM_KEY": "sk-MARKER-litellm-master-8e2",
    "INFERWATCH_LANGFUSE_SECRET_KEY": "sk-lf-MARKER-langfuse-5c0",
    "epp token file": "MARKER-epp-sa-token-a41",
    "HF_TOKEN": "hf_MARKERcatalogtoken77",
    "NATS_PASSWORD": "MARKER-nats-pw-every-02",
    "NATS_TOKEN": "MARKER-nats-token-every-c3",
    "container --api-key": "sk-MARKER-container-cmdline-9f",
    "container env": "MARKER-container-env-6b",
}


@pytest.mark.timeout(120)
async def test_marker_secrets_appear_nowhere_for_every_service(
    nats_url: str,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
    langfuse_server: Any,
) -> None:
    """Every service at once, each with marker secrets; logs, events, /metrics, /readyz, /healthz scanned."""
    m = EVERY_SERVICE_MARKERS
    runners: list[Any] = []
    # vLLM behind --api-key, and a dead one (error paths log)
    sim = SimulatedVllm(model="m", root="org/m", generation=VllmGeneration.V1, version="0.33.0")
    [(vllm_url, vllm_runner)] = await serve([sim], api_key=m["INFERWATCH_VLLM_API_KEY"])
    runners.append(vllm_runner)
    dead_url = f"http://127.0.0.1:{free_port()}"
    # LiteLLM with a master key
    litellm = SimulatedLitellm(m["INFERWATCH_LITELLM_KEY"], scenario="failing")
    litellm.traffic(3)
    litellm_url, litellm_runner = await serve_litellm(litellm)
    runners.append(litellm_runner)
    # Langfuse with a key pair
    now = time.time()
    lf = SimulatedLangfuse(
        make_dataset(3, now - 30, now, traces_per_s=1.0),
        major=4,
        public_key="pk-lf-every",
        secret_key=m["INFERWATCH_LANGFUSE_SECRET_KEY"],
    )
    langfuse_url = await langfuse_server(lf)
    # EPP behind a service-account token
    epp = EppSimulator(token=m["epp token file"], naming="inference_objective")
    epp_runner, epp_url = await epp.serve()
    runners.append(epp_runner)
    token_file = tmp_path / "token"
    token_file.write_text(m["epp token file"] + "\n")
    # Hugging Face with a token it does not accept (the 401 path logs)
    hub = SimulatedHub()
    hub_url, hub_runner = await serve_hub(hub)
    runners.append(hub_runner)
    # Docker: a vLLM container whose command line and environment hold secrets
    engine = FakeDockerEngine(name="secret-host")
    container = vllm_container(
        "vllm-secret",
        "vllm/vllm-openai:v0.33.0",
        free_port(),
        model="org/m",
        extra_args=["--api-key", m["container --api-key"]],
    )
    container.env["OPENAI_API_KEY"] = m["container env"]
    engine.add(container)
    engine.start(container.id)
    socket_path = str(tmp_path / "docker.sock")
    docker_runner = await serve_engine(engine, socket_path)
    runners.append(docker_runner)

    events: list[bytes] = []
    listener = Bus(BusSettings(servers=(nats_url,)), name="secret-listener-every")
    await listener.connect()

    async def collect(msg: Any) -> None:
        events.append(msg.data)

    await listener.subscribe_raw(ALL, collect)
    env = {
        "NATS_URL": nats_url,
        "NATS_USER": "svc",
        "NATS_PASSWORD": m["NATS_PASSWORD"],
        "NATS_TOKEN": m["NATS_TOKEN"],
        "INFERWATCH_LOG_LEVEL": "debug",
        "INFERWATCH_VLLM_API_KEY": m["INFERWATCH_VLLM_API_KEY"],
        "INFERWATCH_VLLM_TARGETS": f"{vllm_url},{dead_url}",
        "INFERWATCH_VLLM_INTERVAL_S": "0.5",
        "INFERWATCH_VLLM_SHARD": "0",
        "INFERWATCH_LITELLM_URL": litellm_url,
        "INFERWATCH_LITELLM_KEY": m["INFERWATCH_LITELLM_KEY"],
        "INFERWATCH_LITELLM_NAME": "main",
        "INFERWATCH_LITELLM_INTERVAL_S": "0.4",
        "INFERWATCH_LANGFUSE_URL": langfuse_url,
        "INFERWATCH_LANGFUSE_PUBLIC_KEY": "pk-lf-every",
        "INFERWATCH_LANGFUSE_SECRET_KEY": m["INFERWATCH_LANGFUSE_SECRET_KEY"],
        "INFERWATCH_LANGFUSE_PROJECT": "every",
        "INFERWATCH_LANGFUSE_INTERVAL_S": "0.3",
        "INFERWATCH_LANGFUSE_BUCKET_S": "2",
        "INFERWATCH_LANGFUSE_BACKFILL_S": "30",
        "INFERWATCH_LANGFUSE_KV_BUCKET": f"lf_secret_{uuid.uuid4().hex[:10]}",
        "INFERWATCH_EPP_TARGETS": epp_url,
        "INFERWATCH_EPP_TOKEN_FILE": str(token_file),
        "INFERWATCH_EPP_INTERVAL_S": "0.5",
        "HF_ENDPOINT": hub_url,
        "HF_TOKEN": m["HF_TOKEN"],
        "INFERWATCH_CATALOG_INTERVAL_S": "0.5",
        "INFERWATCH_CATALOG_KV_BUCKET": f"secret_catalog_{uuid.uuid4().hex[:10]}",
        "DOCKER_HOST": f"unix://{socket_path}",
        "INFERWATCH_DOCKER_HOST_NAME": "secret-host",
        "INFERWATCH_DOCKER_INTERVAL_S": "0.5",
        "INFERWATCH_GPU_NVML": "inferwatch.simulators.nvml:from_env",
        "INFERWATCH_SIM_NVML": "2",
        "INFERWATCH_GPU_HOST": "secret-gpu-host",
        "INFERWATCH_GPU_INTERVAL_S": "0.5",
    }
    services = [s.name for s in SERVICES]
    bodies: dict[str, str] = {}
    try:
        async with contextlib.AsyncExitStack() as stack:
            urls = {}
            for name in services:
                svc = await stack.enter_async_context(running_service(name, env, wait_ready=False, ready_timeout=20))
                urls[name] = svc.url
            agg = urls["aggregator"]

            async def everything_reported() -> bool:
                body = await get_text(agg + "/metrics")
                # each keyed upstream accepted its key (so the secret was really sent), every service reported
                return all(
                    s in body
                    for s in (
                        'models="m"',
                        'inferwatch_litellm_up{proxy="main"} 1',
                        'inferwatch_langfuse_up{project="every"} 1',
                        'inferwatch_epp_up{target="' + epp_url + '",reason=""} 1',
                        'container="vllm-secret"',
                        'host="secret-gpu-host"',
                        'api="huggingface"',
                    )
                )

            await wait_until(everything_reported, timeout=30, what="every service's series in the aggregator")
            await asyncio.sleep(1.5)  # a few more cycles of every error path (401s, refused, missing repos)
            async with httpx.AsyncClient(timeout=5) as client:
                for name, url in urls.items():
                    for path in ("/metrics", "/readyz", "/healthz", "/"):
                        bodies[f"{name}{path}"] = (await client.get(url + path)).text
    finally:
        await listener.close()
        await engine.close_streams()
        for runner in runners:
            await runner.cleanup()
    out, err = capfd.readouterr()
    assert len(events) > 50, "too few events captured"
    for service in ("vllm-scraper", "litellm-poller", "langfuse-ingester", "epp-scraper", "docker-watcher"):
        assert service in err  # every service did log
    for what, marker in m.items():
        for i, data in enumerate(events):
            assert marker.encode() not in data, f"{what} in event {i}: {data[:300]!r}"
        for where, body in bodies.items():
            assert marker not in body, f"{what} in {where}"
        assert marker not in out, f"{what} in stdout"
        assert marker not in err, f"{what} in logs"
