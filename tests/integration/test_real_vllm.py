"""vllm-scraper against a real vLLM (CPU build, tiny local model): every number checked against the server.

One server for the module (about 30 s to start, about 3 GB): known traffic, then a long-request load, then a
stop and a start. The venv and the model are cached (``python -m scripts.real_vllm install``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import aiohttp
import httpx
import pytest
from aiohttp import web

from inferwatch.contracts import AnyEvent
from inferwatch.contracts.subjects import subject_filter
from inferwatch.contracts.vllm import VllmInstanceSnapshot
from inferwatch.shared.bus import Bus, BusSettings
from scripts import real_vllm
from scripts.real_servers import wait_http
from tests.support import free_port, get_text, running_service, wait_until
from tests.support.real_servers import ServerProcess, by_label, require_venv, series, total

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

HISTOGRAMS = (
    "e2e_request_latency_seconds",
    "time_to_first_token_seconds",
    "request_queue_time_seconds",
    "request_prefill_time_seconds",
    "request_decode_time_seconds",
    "request_prompt_tokens",
    "request_generation_tokens",
)
"""Histograms observed once per finished request."""
LOAD_GAUGES = {
    "requests_running": "vllm:num_requests_running",
    "requests_waiting": "vllm:num_requests_waiting",
    "kv_cache_usage_ratio": "vllm:kv_cache_usage_perc",
}
"""inferwatch's engine field → the server's own gauge."""


@dataclass
class RealVllm:
    """The module's server: its base URL and process."""

    url: str
    server: ServerProcess
    health_timeout_s: float = 240.0

    def start(self) -> float:
        """Start it and wait for ``/health``; returns the seconds that took."""
        proc = self.server.start()
        try:
            return wait_http(self.url + "/health", self.health_timeout_s, proc)
        except (TimeoutError, RuntimeError) as exc:
            raise AssertionError(f"{exc}\n{self.server.tail()}") from None


@pytest.fixture(scope="module")
def vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealVllm]:
    """A real vLLM serving the tiny model on a free port; every process of it stopped afterwards."""
    require_venv(real_vllm.VENV, "python -m scripts.real_vllm install")
    real_vllm.ensure_model()
    tmp = tmp_path_factory.mktemp("vllm")
    port = free_port()
    log = tmp / "vllm.log"
    server = ServerProcess(lambda: real_vllm.start(port, log, cache_dir=tmp / "cache"), log)
    instance = RealVllm(f"http://127.0.0.1:{port}", server)
    try:
        instance.start()
        yield instance
    finally:
        server.stop()


@dataclass
class Snapshots:
    """Every snapshot of one target the scraper published, in order."""

    target: str
    seen: list[VllmInstanceSnapshot] = field(default_factory=list)

    async def on_event(self, event: AnyEvent, _subject: str) -> None:
        if isinstance(event, VllmInstanceSnapshot) and event.source == self.target:
            self.seen.append(event)

    def last(self) -> VllmInstanceSnapshot | None:
        return self.seen[-1] if self.seen else None


@pytest.fixture
async def watched(nats_url: str, vllm: RealVllm) -> AsyncIterator[tuple[str, Snapshots]]:
    """An aggregator and a vllm-scraper (1 s interval) on the real server; the aggregator's URL and the snapshots."""
    env = {
        "NATS_URL": nats_url,
        "INFERWATCH_VLLM_TARGETS": vllm.url,
        "INFERWATCH_VLLM_INTERVAL_S": "1",
        "INFERWATCH_VLLM_TIMEOUT_S": "3",
        "INFERWATCH_VLLM_SHARD": "0",
        "INFERWATCH_VLLM_SPREAD": "0",
    }
    snapshots = Snapshots(vllm.url)
    bus = Bus(BusSettings(servers=(nats_url,)), name="real-vllm-observer")
    await bus.connect()
    await bus.subscribe(subject_filter("vllm"), snapshots.on_event)
    try:
        async with running_service("aggregator", env) as agg, running_service("vllm-scraper", env):
            yield agg.url, snapshots
    finally:
        await bus.close()


def exported(body: str, name: str, **labels: str) -> float | None:
    """The one ``inferwatch_vllm_<name>`` sample of the aggregator's exposition matching ``labels``."""
    values = [
        v for n, ls, v in _samples(body, "inferwatch_vllm_" + name) if all(ls.get(k) == x for k, x in labels.items())
    ]
    assert len(values) <= 1, (name, labels, values)
    return values[0] if values else None


def _samples(body: str, name: str) -> list[tuple[str, dict[str, str], float]]:
    """The samples called ``name`` (a histogram's ``_count`` too) of the aggregator's exposition."""
    family = name.removesuffix("_total")
    for suffix in ("_bucket", "_count", "_sum"):
        family = family.removesuffix(suffix) if name.endswith(suffix) else family
    return [(n, ls, v) for n, ls, v in series(body, family) if n == name]


async def send_traffic(url: str) -> tuple[list[dict[str, object]], int]:
    """Completions and chats, some concurrent: every response's ``usage`` and ``finish_reason``; how many."""
    requests: list[tuple[str, dict[str, object]]] = []
    for i in range(6):
        requests.append(("/v1/completions", {"prompt": f"request number {i} says", "max_tokens": 4 + 3 * i}))
    for i in range(4):
        messages = [{"role": "user", "content": f"hello {i}, how are you?"}]
        requests.append(("/v1/chat/completions", {"messages": messages, "max_tokens": 5 + i}))
    concurrent = [("/v1/completions", {"prompt": "a concurrent one " * (j + 1), "max_tokens": 16}) for j in range(8)]
    results: list[dict[str, object]] = []
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:

        async def one(path: str, body: dict[str, object]) -> dict[str, object]:
            r = await client.post(path, json={"model": real_vllm.MODEL_NAME, "temperature": 0, **body})
            r.raise_for_status()
            doc: dict[str, object] = r.json()
            return doc

        for path, body in requests:
            results.append(await one(path, body))
        results.extend(await asyncio.gather(*(one(p, b) for p, b in concurrent)))
    return results, len(requests) + len(concurrent)


async def test_counters_histograms_status_version_and_model_card(
    vllm: RealVllm, watched: tuple[str, Snapshots]
) -> None:
    agg, snapshots = watched
    before = await get_text(vllm.url + "/metrics")
    responses, sent = await send_traffic(vllm.url)
    assert len(responses) == sent
    usage = [r["usage"] for r in responses]
    prompt = sum(u["prompt_tokens"] for u in usage)  # type: ignore[index]
    generated = sum(u["completion_tokens"] for u in usage)  # type: ignore[index]
    reasons: dict[str, float] = {}
    for r in responses:
        reason = r["choices"][0]["finish_reason"]  # type: ignore[index]
        reasons[reason] = reasons.get(reason, 0.0) + 1
    # what the server itself says now: its counters moved by exactly the responses' usage
    own = await get_text(vllm.url + "/metrics")
    assert total(own, "vllm:prompt_tokens") - total(before, "vllm:prompt_tokens") == prompt
    assert total(own, "vllm:generation_tokens") - total(before, "vllm:generation_tokens") == generated
    own_reasons = by_label(own, "vllm:request_success", "finished_reason")
    before_reasons = by_label(before, "vllm:request_success", "finished_reason")
    assert {
        k: v - before_reasons.get(k, 0.0) for k, v in own_reasons.items() if v - before_reasons.get(k, 0.0)
    } == reasons
    expected = {
        "prompt_tokens_total": total(own, "vllm:prompt_tokens"),
        "generation_tokens_total": total(own, "vllm:generation_tokens"),
    }
    labels = {"target": vllm.url, "model_name": real_vllm.MODEL_NAME, "engine": "0"}

    async def caught_up() -> str | None:
        body = await get_text(agg + "/metrics")
        got = {k: exported(body, k, **labels) for k in expected}
        return body if got == expected else None

    body = await wait_until(caught_up, timeout=20, what="inferwatch's token counters equal the server's")
    assert body is not None
    for reason, count in own_reasons.items():
        assert exported(body, "request_success_total", finished_reason=reason, **labels) == count, reason
    # token counters equal the sums of usage (the module's first traffic: the server started at zero)
    assert exported(body, "prompt_tokens_total", **labels) == total(before, "vllm:prompt_tokens") + prompt
    assert exported(body, "generation_tokens_total", **labels) == total(before, "vllm:generation_tokens") + generated
    finished = total(before, "vllm:e2e_request_latency_seconds", "vllm:e2e_request_latency_seconds_count") + sent
    for hist in HISTOGRAMS:
        assert exported(body, hist + "_count", **labels) == finished, hist
        assert exported(body, hist + "_count", **labels) == total(own, "vllm:" + hist, f"vllm:{hist}_count"), hist
    assert exported(body, "request_prompt_tokens_sum", **labels) == total(own, "vllm:prompt_tokens")
    assert exported(body, "request_generation_tokens_sum", **labels) == total(own, "vllm:generation_tokens")
    # status, version, model card
    version = json.loads(await get_text(vllm.url + "/version"))["version"]
    card = json.loads(await get_text(vllm.url + "/v1/models"))["data"][0]
    assert exported(body, "model_status", target=vllm.url, status="ready") == 1.0
    assert exported(body, "up", target=vllm.url) == 1.0
    assert exported(body, "health_ok", target=vllm.url) == 1.0
    assert exported(body, "info", target=vllm.url, version=version, generation="v1", models="tiny-llama") == 1.0
    assert version == real_vllm.VERSION
    assert exported(body, "max_model_len_tokens", target=vllm.url, model_name="tiny-llama") == card["max_model_len"]
    snap = snapshots.last()
    assert snap is not None
    assert [(m.id, m.root, m.max_model_len) for m in snap.models] == [
        (card["id"], card["root"], real_vllm.MAX_MODEL_LEN)
    ]
    assert card["root"] == str(real_vllm.model_dir())


@dataclass
class RecordingProxy:
    """A loopback pass-through to the real server that keeps every ``/metrics`` body it forwarded."""

    upstream: str
    bodies: list[bytes] = field(default_factory=list)

    async def forward(self, request: web.Request) -> web.Response:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.upstream + request.path_qs, headers={"Accept": request.headers.get("Accept", "*/*")}) as r,
        ):
            body = await r.read()
            if request.path == "/metrics" and r.status == 200:
                self.bodies.append(body)
            return web.Response(status=r.status, body=body, content_type=r.content_type)


@pytest.fixture
async def recorded(nats_url: str, vllm: RealVllm) -> AsyncIterator[tuple[RecordingProxy, Snapshots]]:
    """A vllm-scraper (1 s interval) reading the real server through a `RecordingProxy`: the proxy and the
    scraper's snapshots."""
    proxy = RecordingProxy(vllm.url)
    app = web.Application()
    app.router.add_get("/{tail:.*}", proxy.forward)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}"
    env = {
        "NATS_URL": nats_url,
        "INFERWATCH_VLLM_TARGETS": url,
        "INFERWATCH_VLLM_INTERVAL_S": "1",
        "INFERWATCH_VLLM_TIMEOUT_S": "30",  # a CPU server under load answers /metrics in 10-20 s on 2 cores
        "INFERWATCH_VLLM_SHARD": "0",
        "INFERWATCH_VLLM_SPREAD": "0",
    }
    snapshots = Snapshots(url)
    bus = Bus(BusSettings(servers=(nats_url,)), name="real-vllm-recorder")
    await bus.connect()
    await bus.subscribe(subject_filter("vllm"), snapshots.on_event)
    try:
        async with running_service("vllm-scraper", env):
            yield proxy, snapshots
    finally:
        await bus.close()
        await runner.cleanup()


def _favour(pid: int) -> None:
    """Raise the priority of every thread of process ``pid`` (root only; otherwise nothing changes).

    On 2 CPU cores the engine's threads take both while it generates, and the API server (the launcher process)
    answered /metrics 1-4 times in 70 s of load, in some runs never while a request ran; a GPU host leaves it a CPU.
    """
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, int(tid), -10)


async def test_load_gauges_equal_the_servers_own_reading(
    vllm: RealVllm, recorded: tuple[RecordingProxy, Snapshots]
) -> None:
    """Under 64 × 1000-token requests, every scraped load gauge equals the server's own exposition it was read from.

    The scraper reads the server through a recording proxy, so each snapshot is compared with the very bodies the
    server answered (matched by the generation-token counter too, which moves under this load): no timing
    involved, however slowly a busy CPU server answers.
    """
    proxy, snapshots = recorded
    assert vllm.server.proc is not None
    _favour(vllm.server.proc.pid)
    threads = real_vllm.long_load(vllm.url)
    deadline = time.monotonic() + 120

    def join_all() -> None:  # off the event loop: the scraper runs on it meanwhile
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    await asyncio.to_thread(join_all)
    fields = {**LOAD_GAUGES, "generation_tokens_total": "vllm:generation_tokens"}
    served = [{f: total(body, family) for f, family in fields.items()} for body in proxy.bodies]
    compared = []
    for snap in list(snapshots.seen):
        if not snap.engines:
            continue
        mine = {f: getattr(snap.engines[0], f) for f in fields}
        assert mine in served, (snap.observed_at, mine)
        compared.append(mine)
    busy = [c for c in compared if c["requests_running"] > 0]
    print(
        f"load: {len(proxy.bodies)} bodies, {len(snapshots.seen)} scrapes, {len(compared)} compared, {len(busy)} busy"
    )
    assert busy, f"no scrape under load ({len(compared)} compared, {len(proxy.bodies)} bodies served)"
    assert any(c["kv_cache_usage_ratio"] > 0 for c in busy)


async def test_stopped_server_is_down_with_reason_then_back(vllm: RealVllm, watched: tuple[str, Snapshots]) -> None:
    agg, snapshots = watched

    async def status(expected: str, up: float) -> str | None:
        body = await get_text(agg + "/metrics")
        ok = exported(body, "model_status", target=vllm.url, status=expected) == 1.0
        return body if ok and exported(body, "up", target=vllm.url) == up else None

    await wait_until(lambda: status("ready", 1.0), timeout=20, what="ready before the stop")
    vllm.server.stop()
    body = await wait_until(lambda: status("error", 0.0), timeout=30, what="up 0, status error after the stop")
    reasons = [
        ls["reason"] for _n, ls, _v in _samples(body, "inferwatch_vllm_scrape_error_info") if ls["target"] == vllm.url
    ]
    assert reasons, "no scrape_error_info"
    assert reasons[0] in ("connect_error", "circuit_open"), reasons
    assert exported(body, "scrape_errors_total", target=vllm.url, reason="connect_error")
    last = snapshots.last()
    assert last is not None
    assert not last.up
    waited = vllm.start()
    assert waited > 0
    await wait_until(lambda: status("ready", 1.0), timeout=30, what="ready again after the start")
