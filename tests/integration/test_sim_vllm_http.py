"""The vLLM simulator over HTTP on loopback: readiness, API keys, fault switches, the command line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import signal
import sys
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from inferwatch.simulators.vllm import (
    HUGE_BODY_BYTES,
    METRICS_CONTENT_TYPE,
    SimulatedVllm,
    VllmGeneration,
    build_app,
    make_fleet,
    serve,
    start_demo,
)
from tests.support import FIXTURES, ROOT
from tests.support.sim_vllm import make, parse

# --------------------------------------------------------------------------------------------------------------
# Over HTTP


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@contextlib.asynccontextmanager
async def running(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def client(inst: SimulatedVllm, **kw: object) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    async with running(build_app(inst, **kw)) as url, aiohttp.ClientSession() as session:  # type: ignore[arg-type]
        yield session, url


async def get_text(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as resp:
        return resp.status, await resp.text()


async def test_http_metrics_content_type_and_parse() -> None:
    async with client(make(VllmGeneration.V1)) as (session, url):
        for path in ("/metrics", "/metrics/"):
            async with session.get(url + path, allow_redirects=False) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"] == METRICS_CONTENT_TYPE
                assert "vllm:kv_cache_usage_perc" in parse(await resp.read())


async def test_http_loading_then_ready_and_values_evolve() -> None:
    clock = FakeClock()
    inst = make(VllmGeneration.V1, load_seconds=20.0)
    async with client(inst, clock=clock) as (session, url):
        for path in ("/health", "/ping", "/v1/models", "/metrics"):
            assert (await get_text(session, url + path))[0] == 503, path
        clock.t += 19.0
        assert (await get_text(session, url + "/health"))[0] == 503
        clock.t += 1.5
        assert await get_text(session, url + "/health") == (200, "")
        assert (await get_text(session, url + "/v1/models"))[0] == 200
        status, first = await get_text(session, url + "/metrics")
        assert status == 200
        clock.t += 0.5  # within the render interval: the cached body comes back
        assert (await get_text(session, url + "/metrics"))[1] == first
        clock.t += 120.0
        second = (await get_text(session, url + "/metrics"))[1]

    def tokens(text: str) -> float:
        return next(s.value for s in parse(text)["vllm:generation_tokens"].samples)  # type: ignore[attr-defined]

    assert tokens(second) > tokens(first)
    assert 'handler="/v1/models"' in second  # the monitor's own /v1/models polls are counted, as PFI does


async def test_http_long_gap_is_bounded() -> None:
    clock = FakeClock()
    inst = make(VllmGeneration.V0_6)
    async with client(inst, clock=clock) as (session, url):
        await get_text(session, url + "/metrics")
        clock.t += 86_400.0
        t0 = time.perf_counter()
        assert (await get_text(session, url + "/metrics"))[0] == 200
        assert time.perf_counter() - t0 < 2.0
    assert inst.sim_time <= 301.0


async def test_http_api_key_guards_only_v1_models() -> None:
    inst = make(VllmGeneration.V1)
    async with client(inst, api_key="sekrit") as (session, url):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "sekrit"}):
            async with session.get(url + "/v1/models", headers=headers) as resp:
                assert resp.status == 401
                assert await resp.json() == {"error": "Unauthorized"}
        async with session.get(url + "/v1/models", headers={"Authorization": "Bearer sekrit"}) as resp:
            assert resp.status == 200
            assert (await resp.json())["data"][0]["id"] == "qwen3-8b"
        assert (await get_text(session, url + "/metrics"))[0] == 200
        assert await get_text(session, url + "/version") == (200, '{"version":"0.33.0"}')
        assert (await get_text(session, url + "/health"))[0] == 200
        async with session.post(url + "/ping") as resp:
            assert resp.status == 200
    text = inst.render_metrics().decode()
    assert 'http_requests_total{handler="/v1/models",method="GET",status="4xx"} 3.0' in text
    assert 'http_requests_total{handler="/v1/models",method="GET",status="2xx"} 1.0' in text


async def test_http_models_shape_matches_fixture() -> None:
    recorded = json.loads((FIXTURES / "vllm-v1-models.json").read_text())
    async with (
        client(make(VllmGeneration.V1, max_model_len=32768)) as (session, url),
        session.get(url + "/v1/models") as resp,
    ):
        assert resp.headers["Content-Type"] == "application/json"
        raw = await resp.read()
    body = json.loads(raw)
    assert list(body["data"][0]) == list(recorded["data"][0])
    assert body["data"][0]["root"] == recorded["data"][0]["root"]
    assert body["data"][0]["max_model_len"] == recorded["data"][0]["max_model_len"]


async def test_http_dead_engine() -> None:
    inst = make(VllmGeneration.V1)
    async with client(inst) as (session, url):
        assert (await get_text(session, url + "/health"))[0] == 200
        inst.dead = True
        assert (await get_text(session, url + "/health"))[0] == 503
        assert (await get_text(session, url + "/v1/models"))[0] == 503
        assert (await get_text(session, url + "/metrics"))[0] == 200  # the API server still answers
        inst.dead = False
        assert (await get_text(session, url + "/health"))[0] == 200


async def test_http_factory_form_serves_the_current_instance() -> None:
    current = [make(VllmGeneration.V1)]
    async with running(build_app(lambda: current[0])) as url, aiohttp.ClientSession() as session:
        assert (await get_text(session, url + "/version"))[1] == '{"version":"0.33.0"}'
        current[0] = make(VllmGeneration.V0_6)
        assert (await get_text(session, url + "/version"))[1] == '{"version":"0.6.3.post1"}'


async def test_fault_500() -> None:
    inst = make(VllmGeneration.V1, fault="500")
    async with client(inst) as (session, url):
        assert (await get_text(session, url + "/metrics"))[0] == 500
        assert (await get_text(session, url + "/health"))[0] == 200  # faults touch /metrics only


async def test_fault_hang_times_out() -> None:
    async with client(make(VllmGeneration.V1, fault="hang")) as (session, url):
        t0 = time.perf_counter()
        with pytest.raises(asyncio.TimeoutError):
            async with session.get(url + "/metrics", timeout=aiohttp.ClientTimeout(total=0.5)) as resp:
                await resp.read()
        assert time.perf_counter() - t0 < 2.0


async def test_fault_dribble_sends_a_byte_at_a_time() -> None:
    inst = make(VllmGeneration.V1, fault="dribble")
    async with (
        client(inst) as (session, url),
        session.get(url + "/metrics", timeout=aiohttp.ClientTimeout(total=0.6)) as resp,
    ):
        assert resp.status == 200
        assert resp.content_length is not None
        assert resp.content_length > 10_000
        t0 = time.perf_counter()
        assert await resp.content.readexactly(3) == b"# H"
        assert time.perf_counter() - t0 >= 0.15  # ~0.1 s per byte
        with pytest.raises(asyncio.TimeoutError):
            await resp.read()


async def test_fault_garbage_is_not_parseable() -> None:
    async with client(make(VllmGeneration.V1, fault="garbage")) as (session, url):
        status, text = await get_text(session, url + "/metrics")
    assert status == 200
    with pytest.raises(ValueError):  # noqa: PT011 - prometheus_client raises a bare ValueError
        list(text_string_to_metric_families(text))


async def test_fault_huge_body() -> None:
    async with client(make(VllmGeneration.V1, fault="huge")) as (session, url), session.get(url + "/metrics") as resp:
        assert resp.status == 200
        assert resp.content_length is not None
        assert resp.content_length >= HUGE_BODY_BYTES
        total = 0
        head = b""
        async for chunk in resp.content.iter_chunked(1 << 20):
            if not head:
                head = chunk[:6]
            total += len(chunk)
    assert head == b"# HELP"
    assert total == resp.content_length >= 50 * 1024 * 1024


async def test_fault_bad_utf8() -> None:
    async with (
        client(make(VllmGeneration.V0_5, fault="bad_utf8")) as (session, url),
        session.get(url + "/metrics") as resp,
    ):
        raw = await resp.read()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")


async def test_fault_nan_gauges() -> None:
    async with client(make(VllmGeneration.V1, fault="nan")) as (session, url):
        status, text = await get_text(session, url + "/metrics")
    assert status == 200
    fams = parse(text)
    kv = fams["vllm:kv_cache_usage_perc"].samples[0].value  # type: ignore[attr-defined]
    running_ = fams["vllm:num_requests_running"].samples[0].value  # type: ignore[attr-defined]
    assert math.isnan(kv) or math.isinf(kv)
    assert math.isnan(running_) or math.isinf(running_)
    values = [s.value for f in fams.values() for s in f.samples]  # type: ignore[attr-defined]
    assert any(math.isnan(v) for v in values)
    assert math.inf in values


async def test_serve_many_instances_on_shared_runner() -> None:
    fleet = make_fleet(6, seed=1)
    fleet[1].load_seconds = 0.0  # the demo's loading instance: make it ready for this test
    pairs = await serve(fleet)
    try:
        assert len({url for url, _ in pairs}) == 6
        async with aiohttp.ClientSession() as session:
            for (url, _), inst in zip(pairs, fleet, strict=True):
                async with session.get(url + "/v1/models") as resp:
                    assert (await resp.json())["data"][0]["id"] == inst.model
                async with session.get(url + "/version") as resp:
                    assert (await resp.json())["version"] == inst.version
                status, text = await get_text(session, url + "/metrics")
                assert status == 200
                assert "vllm:num_requests_running" in parse(text)
    finally:
        for _, runner in pairs:  # one runner behind every pair; cleanup is idempotent
            await runner.cleanup()


async def test_start_demo_hook() -> None:
    demo = await start_demo()
    try:
        targets = demo.env["INFERWATCH_VLLM_TARGETS"].split(",")
        assert len(targets) == 4
        async with aiohttp.ClientSession() as session:
            assert (await get_text(session, targets[0] + "/health"))[0] == 200
            assert (await get_text(session, targets[1] + "/health"))[0] == 503  # still loading (20 s)
    finally:
        await demo.stop()


async def test_command_line_serves_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "inferwatch.simulators.vllm",
        "--count",
        "2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        lines = [await asyncio.wait_for(proc.stdout.readline(), 10) for _ in range(2)]
        urls = [ln.decode().split("\t")[0] for ln in lines]
        assert all(u.startswith("http://127.0.0.1:") for u in urls)
        async with aiohttp.ClientSession() as session:
            assert (await get_text(session, urls[0] + "/health"))[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
