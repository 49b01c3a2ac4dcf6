"""model-catalog end to end: real NATS (JetStream KV), the simulated Hugging Face Hub on loopback, the service
run in-process. Snapshots go in on the bus, the merged and enriched catalog comes out on the bus."""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from nats.aio.msg import Msg

from inferwatch.contracts import ALL, AnyEvent, Event
from inferwatch.contracts.catalog import CatalogEntry, ModelCatalogSnapshot
from inferwatch.contracts.docker import ContainerInfo, ContainerLifecycle, DockerHostSnapshot
from inferwatch.contracts.litellm import LitellmProxySnapshot, ModelRoute
from inferwatch.contracts.subjects import subject_filter
from inferwatch.contracts.vllm import VllmInstanceSnapshot, VllmModelCard
from inferwatch.services.model_catalog.core import parse_hf_model
from inferwatch.shared.bus import Bus, BusSettings
from inferwatch.shared.natsserver import EmbeddedNats
from inferwatch.simulators.huggingface import PRIVATE_REPO, RESTRICTED_REPO, SimulatedHub, serve
from tests.support import get_text, running_service, wait_until

SERVICE = "model-catalog"
QWEN_PARAMS = 8190735360


@dataclass
class Observer:
    """A bus client that publishes the inputs and keeps every catalog snapshot and every raw payload."""

    bus: Bus
    catalogs: list[ModelCatalogSnapshot] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)

    async def on_catalog(self, event: AnyEvent, _subject: str) -> None:
        if isinstance(event, ModelCatalogSnapshot):
            self.catalogs.append(event)

    async def on_raw(self, msg: Msg) -> None:
        self.payloads.append(msg.data)

    def latest(self) -> dict[str, CatalogEntry]:
        return {e.name: e for e in self.catalogs[-1].entries} if self.catalogs else {}

    async def publish(self, *events: Event) -> None:
        for event in events:
            assert await self.bus.publish(event)
        await self.bus.flush()


@pytest.fixture
async def observer(nats_url: str) -> AsyncIterator[Observer]:
    bus = Bus(BusSettings(servers=(nats_url,)), name="test-observer")
    await bus.connect()
    obs = Observer(bus)
    await bus.subscribe(subject_filter("catalog", "models"), obs.on_catalog)
    await bus.subscribe_raw(ALL, obs.on_raw)
    yield obs
    await bus.close()


@pytest.fixture
async def hub() -> AsyncIterator[tuple[SimulatedHub, str]]:
    sim = SimulatedHub()
    url, runner = await serve(sim)
    yield sim, url
    await runner.cleanup()


def service_env(nats_url: str, hf_url: str, **extra: str) -> dict[str, str]:
    """The service on a bucket of its own (the session's NATS is shared by every test)."""
    return {
        "NATS_URL": nats_url,
        "HF_ENDPOINT": hf_url,
        "INFERWATCH_CATALOG_INTERVAL_S": "0.5",
        "INFERWATCH_CATALOG_KV_BUCKET": "test_catalog_" + uuid.uuid4().hex[:12],
        **extra,
    }


def vllm(source: str, *cards: VllmModelCard, up: bool = True, status: str = "ready") -> VllmInstanceSnapshot:
    return VllmInstanceSnapshot(
        source=source,
        observed_at=time.time(),
        collector="test",
        interval_s=60.0,
        up=up,
        status=status,
        health_ok=up,
        models=list(cards),
    )


def litellm_proxy() -> LitellmProxySnapshot:
    return LitellmProxySnapshot(
        source="demo-litellm",
        observed_at=time.time(),
        collector="test",
        interval_s=60.0,
        up=True,
        ready=True,
        base_url="http://litellm:4000",
        routes=[
            ModelRoute(
                model_group="qwen3-8b",
                deployment_id="d1",
                model_type="llm",
                provider="hosted_vllm",
                api_base="http://vllm-a:8000/v1",
                status="healthy",
                max_input_tokens=32768,
            ),
            ModelRoute(
                model_group="bge-m3", deployment_id="d2", model_type="embedding", provider="openai", status="healthy"
            ),
        ],
    )


def docker_host() -> DockerHostSnapshot:
    return DockerHostSnapshot(
        source="gpu-host-1",
        observed_at=time.time(),
        collector="test",
        interval_s=60.0,
        engine_version="27.3.1",
        containers=[
            ContainerInfo(
                id="c-awq",
                name="vllm-qwen3-awq",
                image="vllm/vllm-openai:v0.10.1",
                state="running",
                kind="vllm",
                models=["qwen3-8b-awq"],
                model_path="Qwen/Qwen3-8B-AWQ",
                quantization="awq",
                max_model_len=8192,
                scrape_url="http://10.0.0.5:8000",
            ),
            ContainerInfo(id="c-redis", name="redis", image="redis:7", state="running"),
        ],
    )


def enriched(obs: Observer, *names: str) -> bool:
    latest = obs.latest()
    return all(n in latest and latest[n].parameter_count > 0 for n in names)


async def test_catalog_merges_sources_enriches_from_hf_and_keeps_the_token_secret(
    nats_url: str,
    hub: tuple[SimulatedHub, str],
    observer: Observer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim, url = hub
    caplog.set_level(logging.DEBUG)
    token = "hf_" + secrets.token_hex(16)
    sim.tokens.add(token)
    env = service_env(nats_url, url, HF_TOKEN=token)
    inputs = (
        vllm("http://vllm-a:8000", VllmModelCard(id="qwen3-8b", root="Qwen/Qwen3-8B", max_model_len=32768)),
        vllm(
            "http://vllm-b:8000",
            VllmModelCard(id="llama-3.1-8b-instruct", root="meta-llama/Llama-3.1-8B-Instruct", max_model_len=16384),
        ),
        litellm_proxy(),
        docker_host(),
    )
    async with running_service(SERVICE, env) as svc:
        await observer.publish(*inputs)
        await wait_until(
            lambda: enriched(observer, "qwen3-8b", "llama-3.1-8b-instruct", "qwen3-8b-awq"),
            timeout=20,
            what="an enriched catalog",
        )
        published = len(observer.catalogs)
        await wait_until(lambda: len(observer.catalogs) >= published + 3, timeout=20, what="periodic catalogs")
        metrics = await get_text(svc.url + "/metrics")
        ready = await get_text(svc.url + "/readyz")

    entries = observer.latest()
    assert sorted(entries) == ["bge-m3", "llama-3.1-8b-instruct", "qwen3-8b", "qwen3-8b-awq"]
    qwen = entries["qwen3-8b"]
    assert qwen.model_id == "Qwen/Qwen3-8B"
    assert qwen.providers == ["litellm", "vllm"]
    assert qwen.endpoints == ["http://litellm:4000", "http://vllm-a:8000"]
    assert qwen.max_context == 32768
    assert qwen.available is True
    assert (qwen.parameter_count, qwen.pipeline_tag, qwen.license, qwen.gated) == (
        QWEN_PARAMS,
        "text-generation",
        "apache-2.0",
        False,
    )
    assert qwen.hf_url == "https://huggingface.co/Qwen/Qwen3-8B"
    llama = entries["llama-3.1-8b-instruct"]
    assert (llama.license, llama.gated, llama.parameter_count) == ("llama3.1", True, 8030261248)  # gated: "manual"
    awq = entries["qwen3-8b-awq"]
    assert (awq.providers, awq.quantization, awq.endpoints) == (["docker"], "awq", ["http://10.0.0.5:8000"])
    assert entries["bge-m3"].model_type == "embedding"
    assert entries["bge-m3"].hf_url == ""  # a LiteLLM group name is not a repo id: never looked up

    # one request per repo id, however many cycles ran; the token sent as a bearer
    assert sim.count() == 3
    assert {r for r, _, _ in sim.requests} == {"Qwen/Qwen3-8B", "meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen3-8B-AWQ"}
    assert set(sim.authorizations) == {f"Bearer {token}"}
    assert (
        'inferwatch_upstream_requests_total{api="huggingface",endpoint="/api/models/{repo_id}",outcome="ok"} 3.0'
        in metrics
    )
    assert "JetStream key-value" in ready

    # the token never reached a log record, an event on the bus or the service's metrics
    assert caplog.records, "the service logged nothing: the secrecy check would be vacuous"
    for record in caplog.records:
        assert token not in record.getMessage()
        assert token not in repr(vars(record))
    assert observer.payloads
    assert not [p for p in observer.payloads if token.encode() in p]
    assert token not in metrics

    # a second instance (another replica, or a restart) finds every lookup in the shared bucket
    before = sim.count()
    observer.catalogs.clear()
    async with running_service(SERVICE, env) as svc:
        await observer.publish(*inputs)
        await wait_until(
            lambda: enriched(observer, "qwen3-8b", "llama-3.1-8b-instruct", "qwen3-8b-awq"),
            timeout=20,
            what="an enriched catalog from the second instance",
        )
        metrics = await get_text(svc.url + "/metrics")
    assert sim.count() == before
    assert 'inferwatch_catalog_hf_lookups_total{result="cache_kv"} 3.0' in metrics


async def test_offline_mode_makes_no_request_and_still_publishes(
    nats_url: str,
    hub: tuple[SimulatedHub, str],
    observer: Observer,
) -> None:
    sim, url = hub
    env = service_env(nats_url, url, HF_HUB_OFFLINE="1")
    async with running_service(SERVICE, env) as svc:
        await observer.publish(
            vllm("http://vllm-a:8000", VllmModelCard(id="qwen3-8b", root="Qwen/Qwen3-8B", max_model_len=32768))
        )
        await wait_until(lambda: "qwen3-8b" in observer.latest(), timeout=20, what="a catalog")
        published = len(observer.catalogs)
        await wait_until(lambda: len(observer.catalogs) >= published + 3, timeout=20, what="periodic catalogs")
        ready = await get_text(svc.url + "/readyz")  # raises unless 200
        metrics = await get_text(svc.url + "/metrics")
    assert sim.count() == 0
    assert "HF_HUB_OFFLINE" in ready
    entry = observer.latest()["qwen3-8b"]
    assert (entry.max_context, entry.available, entry.parameter_count, entry.license) == (32768, True, 0, "")
    assert entry.hf_url == "https://huggingface.co/Qwen/Qwen3-8B"
    assert 'api="huggingface"' not in metrics


async def test_private_and_restricted_repos_are_marked_gated_and_not_retried(
    nats_url: str,
    hub: tuple[SimulatedHub, str],
    observer: Observer,
) -> None:
    sim, url = hub  # anonymous: the private repo answers 401, the restricted one 403
    env = service_env(nats_url, url)
    async with running_service(SERVICE, env):
        await observer.publish(
            vllm(
                "http://vllm-a:8000",
                VllmModelCard(id="private", root=PRIVATE_REPO),
                VllmModelCard(id="restricted", root=RESTRICTED_REPO),
                VllmModelCard(id="qwen3-8b", root="Qwen/Qwen3-8B"),
            )
        )
        await wait_until(
            lambda: (
                all(observer.latest().get(n, CatalogEntry(name=n)).gated for n in ("private", "restricted"))
                and enriched(observer, "qwen3-8b")
            ),
            timeout=20,
            what="gated entries",
        )
        published = len(observer.catalogs)
        await wait_until(lambda: len(observer.catalogs) >= published + 4, timeout=20, what="more cycles")
    assert (sim.count(PRIVATE_REPO, 401), sim.count(RESTRICTED_REPO, 403)) == (1, 1)
    assert sim.count() == 3
    entries = observer.latest()
    assert entries["private"].parameter_count == 0
    assert entries["qwen3-8b"].gated is False


async def test_not_found_cached_and_server_errors_backed_off_until_the_hub_recovers(
    nats_url: str,
    hub: tuple[SimulatedHub, str],
    observer: Observer,
) -> None:
    sim, url = hub
    token = "hf_" + secrets.token_hex(16)
    sim.tokens.add(token)  # authenticated: an unknown repo answers 404
    sim.fail_status = 500
    env = service_env(nats_url, url, HF_TOKEN=token, INFERWATCH_CATALOG_HF_RETRY_BASE_S="2")
    async with running_service(SERVICE, env) as svc:
        await observer.publish(
            vllm(
                "http://vllm-a:8000",
                VllmModelCard(id="qwen3-8b", root="Qwen/Qwen3-8B"),
                VllmModelCard(id="mine", root="nobody/no-such-model"),
            )
        )
        await wait_until(lambda: sim.count(status=500) >= 4, timeout=20, what="failed lookups")
        assert not enriched(observer, "qwen3-8b")
        assert {"qwen3-8b", "mine"} <= set(observer.latest())  # published all the same
        metrics = await get_text(svc.url + "/metrics")
        assert 'outcome="http_5xx"' in metrics
        assert 'inferwatch_catalog_hf_lookups_total{result="error"}' in metrics
        sim.fail_status = None
        await wait_until(lambda: enriched(observer, "qwen3-8b"), timeout=30, what="enrichment after recovery")
        await wait_until(lambda: sim.count("nobody/no-such-model", 404) == 1, timeout=20, what="the 404")
        published = len(observer.catalogs)
        await wait_until(lambda: len(observer.catalogs) >= published + 4, timeout=20, what="more cycles")
    assert sim.count("nobody/no-such-model", 404) == 1  # not found: cached, not asked again
    assert sim.count("Qwen/Qwen3-8B", 200) == 1
    mine = observer.latest()["mine"]
    assert (mine.gated, mine.parameter_count) == (False, 0)


async def test_rate_limit_pauses_every_lookup_for_retry_after(
    nats_url: str,
    hub: tuple[SimulatedHub, str],
    observer: Observer,
) -> None:
    sim, url = hub
    sim.rate_limited, sim.retry_after_s = 1, 2
    env = service_env(nats_url, url, INFERWATCH_CATALOG_HF_CONCURRENCY="1")
    async with running_service(SERVICE, env):
        await observer.publish(
            vllm(
                "http://vllm-a:8000",
                VllmModelCard(id="qwen3-8b", root="Qwen/Qwen3-8B"),
                VllmModelCard(id="gemma", root="google/gemma-3-12b-it"),
            )
        )
        await wait_until(lambda: sim.count(status=429) == 1, timeout=20, what="the 429")
        await wait_until(lambda: "qwen3-8b" in observer.latest(), timeout=10, what="a catalog while rate limited")
        await wait_until(lambda: enriched(observer, "qwen3-8b", "gemma"), timeout=30, what="enrichment after 429")
    limited_at = next(t for _, s, t in sim.requests if s == 429)
    after = [t for _, s, t in sim.requests if s != 429]
    assert sim.count(status=429) == 1
    assert len(after) == 2  # each repo asked once more, nothing in between
    assert min(after) >= limited_at + sim.retry_after_s - 0.05  # Retry-After honoured for every repo


async def test_memory_cache_when_jetstream_is_unavailable(hub: tuple[SimulatedHub, str]) -> None:
    sim, url = hub
    server = EmbeddedNats(jetstream=False)
    nats_url = server.start()
    try:
        bus = Bus(BusSettings(servers=(nats_url,)), name="test-observer")
        await bus.connect()
        obs = Observer(bus)
        await bus.subscribe(subject_filter("catalog", "models"), obs.on_catalog)
        env = service_env(nats_url, url)
        async with running_service(SERVICE, env) as svc:
            await obs.publish(vllm("http://vllm-a:8000", VllmModelCard(id="qwen3-8b", root="Qwen/Qwen3-8B")))
            await wait_until(lambda: enriched(obs, "qwen3-8b"), timeout=20, what="enrichment without JetStream")
            published = len(obs.catalogs)
            await wait_until(lambda: len(obs.catalogs) >= published + 3, timeout=20, what="more cycles")
            ready = await get_text(svc.url + "/readyz")
        await bus.close()
    finally:
        server.close()
    assert "memory (JetStream unavailable)" in ready
    assert sim.count() == 1  # the in-memory cache still answers every later cycle


async def test_stopped_container_and_down_vllm_keep_their_models_unavailable(
    nats_url: str,
    hub: tuple[SimulatedHub, str],
    observer: Observer,
) -> None:
    _, url = hub
    env = service_env(nats_url, url, HF_HUB_OFFLINE="1")
    async with running_service(SERVICE, env):
        await observer.publish(
            docker_host(), vllm("http://vllm-a:8000", VllmModelCard(id="qwen3-8b", root="Qwen/Qwen3-8B"))
        )
        await wait_until(
            lambda: (
                observer.latest().get("qwen3-8b-awq", CatalogEntry(name="")).available
                and observer.latest().get("qwen3-8b", CatalogEntry(name="")).available
            ),
            timeout=20,
            what="available models",
        )
        first_seen = observer.latest()["qwen3-8b"].first_seen
        await observer.publish(
            ContainerLifecycle(
                source="c-awq",
                observed_at=time.time(),
                collector="test",
                host="gpu-host-1",
                name="vllm-qwen3-awq",
                action="die",
                exit_code=137,
                kind="vllm",
            ),
            vllm("http://vllm-a:8000", up=False, status="error"),
        )
        await wait_until(
            lambda: not observer.latest()["qwen3-8b-awq"].available and not observer.latest()["qwen3-8b"].available,
            timeout=20,
            what="unavailable models",
        )
    assert observer.latest()["qwen3-8b"].first_seen == first_seen
    assert observer.latest()["qwen3-8b"].model_id == "Qwen/Qwen3-8B"


async def test_demo_hook_points_the_catalog_at_the_simulator() -> None:
    from inferwatch.simulators.huggingface import start_demo

    demo = await start_demo()
    try:
        url = demo.env["HF_ENDPOINT"]
        assert url.startswith("http://127.0.0.1:")
        # every repo the demo vLLM fleet and Docker containers serve
        for repo in (
            "Qwen/Qwen3-8B",
            "meta-llama/Llama-3.1-8B-Instruct",
            "mistralai/Mistral-7B-Instruct-v0.3",
            "meta-llama/Llama-2-13b-chat-hf",
            "Qwen/Qwen2.5-32B-Instruct",
            "google/gemma-3-12b-it",
        ):
            body = json.loads(await get_text(url + f"/api/models/{repo}"))
            info = parse_hf_model(body)
            assert body["id"] == repo
            assert info.parameter_count > 0
            assert info.license
            assert info.pipeline_tag
    finally:
        await demo.stop()


async def test_hub_timeouts_are_counted_and_the_catalog_still_published(
    nats_url: str,
    hub: tuple[SimulatedHub, str],
    observer: Observer,
) -> None:
    sim, url = hub
    sim.delay_s = 2.0
    env = service_env(nats_url, url, INFERWATCH_CATALOG_HF_TIMEOUT_S="0.2", INFERWATCH_CATALOG_HF_RETRY_BASE_S="60")
    async with running_service(SERVICE, env) as svc:
        await observer.publish(vllm("http://vllm-a:8000", VllmModelCard(id="qwen3-8b", root="Qwen/Qwen3-8B")))
        await wait_until(lambda: "qwen3-8b" in observer.latest(), timeout=20, what="a catalog")

        async def timed_out() -> bool:
            return 'outcome="timeout"} 2.0' in await get_text(svc.url + "/metrics")  # one call, retried once

        await wait_until(timed_out, timeout=20, what="counted timeouts")
        published = len(observer.catalogs)
        await wait_until(lambda: len(observer.catalogs) >= published + 2, timeout=20, what="catalogs go on")
        metrics = await get_text(svc.url + "/metrics")
    assert 'inferwatch_catalog_hf_lookups_total{result="error"} 1.0' in metrics  # backing off: not asked again
    assert observer.latest()["qwen3-8b"].parameter_count == 0
