"""The vLLM simulator: exposition shape per generation, simulation invariants, HTTP behaviour and fault switches."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import re
import signal
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from inferwatch.simulators.vllm import (
    HUGE_BODY_BYTES,
    METRICS_CONTENT_TYPE,
    SimulatedVllm,
    VllmGeneration,
    build_app,
    demo_fleet,
    make_fleet,
    serve,
    start_demo,
)
from inferwatch.simulators.vllm.registry import fmt_legacy

FIXTURES = Path(__file__).parent / "fixtures"
REPO_ROOT = Path(__file__).resolve().parents[1]
VERSIONS = {
    VllmGeneration.V0_5: "0.5.3.post1",
    VllmGeneration.V0_6: "0.6.3.post1",
    VllmGeneration.V1_10: "0.10.1",
    VllmGeneration.V1: "0.33.0",
}
ALL_GENERATIONS = list(VERSIONS)
START_WALL = 1_795_507_200.27


def make(gen: VllmGeneration, **kw: object) -> SimulatedVllm:
    kw.setdefault("seed", 7)
    kw.setdefault("start_wall", START_WALL)
    return SimulatedVllm("qwen3-8b", "Qwen/Qwen3-8B", gen, VERSIONS[gen], **kw)  # type: ignore[arg-type]


def parse(body: bytes | str) -> dict[str, object]:
    text = body.decode() if isinstance(body, bytes) else body
    return {f.name: f for f in text_string_to_metric_families(text)}


def shape(body: bytes | str) -> dict[str, tuple[str, str, frozenset[frozenset[str]]]]:
    """Family name -> (type, HELP, set of label-name sets)."""
    text = body.decode() if isinstance(body, bytes) else body
    return {
        f.name: (f.type, f.documentation, frozenset(frozenset(s.labels) for s in f.samples))
        for f in text_string_to_metric_families(text)
    }


def bucket_edges(body: bytes | str) -> dict[str, list[str]]:
    text = body.decode() if isinstance(body, bytes) else body
    out: dict[str, list[str]] = {}
    for f in text_string_to_metric_families(text):
        if f.type == "histogram":
            les: list[str] = []
            for s in f.samples:
                if s.name.endswith("_bucket") and s.labels["le"] not in les:
                    les.append(s.labels["le"])
            out[f.name] = les
    return out


def samples(body: bytes) -> list[Sample]:
    return [s for f in text_string_to_metric_families(body.decode()) for s in f.samples]


def monotonic_series(body: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every series that must never decrease: counters and histogram/summary buckets, counts and sums."""
    out = {}
    for f in text_string_to_metric_families(body.decode()):
        if f.type in ("counter", "histogram", "summary"):
            for s in f.samples:
                if not s.name.endswith("_created"):
                    out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


# --------------------------------------------------------------------------------------------------------------
# Exposition shape


@pytest.mark.parametrize("gen", ALL_GENERATIONS)
def test_render_parses_for_every_generation(gen: VllmGeneration) -> None:
    inst = make(gen)
    inst.step(300)
    fams = parse(inst.render_metrics())
    assert "vllm:num_requests_running" in fams
    assert "vllm:generation_tokens" in fams  # counter family names lose their _total in the parser
    for s in (s for f in fams.values() for s in f.samples):  # type: ignore[attr-defined]
        assert math.isfinite(s.value), s


@pytest.mark.parametrize(
    ("gen", "fixture", "max_model_len"),
    [
        (VllmGeneration.V1, "vllm-v1-metrics.txt", 32768),
        (VllmGeneration.V0_5, "vllm-v0-metrics.txt", 8192),
    ],
)
def test_family_shapes_match_recorded_exposition(gen: VllmGeneration, fixture: str, max_model_len: int) -> None:
    inst = make(gen, max_model_len=max_model_len)
    inst.step(600)  # long enough for lazily created children (http_* handlers, V0 finished_reason) to appear
    body = inst.render_metrics()
    recorded = (FIXTURES / fixture).read_text()
    assert shape(body) == shape(recorded)  # same families, types, HELP texts and label names
    assert bucket_edges(body) == bucket_edges(recorded)


def test_header_lines_are_in_fixture_order_for_v1() -> None:
    inst = make(VllmGeneration.V1, max_model_len=32768)
    inst.step(600)
    mine = [ln for ln in inst.render_metrics().decode().splitlines() if ln.startswith("# ")]
    recorded = [
        ln
        for ln in (FIXTURES / "vllm-v1-metrics.txt").read_text().splitlines()
        if ln.startswith("# HELP") or ln.startswith("# TYPE")
    ]
    assert mine == recorded


def test_float_spelling_follows_the_prometheus_client_of_each_release() -> None:
    v0 = make(VllmGeneration.V0_5).render_metrics()
    v1 = make(VllmGeneration.V1).render_metrics()
    # 0.5.3 shipped prometheus_client 0.20 (exponent ≥10 written e+011); 0.33 writes e+10 like the installed one
    assert re.search(rb"^process_virtual_memory_bytes \d\.\d+e\+01\d$", v0, re.M)
    assert re.search(rb"^process_virtual_memory_bytes \d\.\d+e\+10$", v1, re.M)
    assert re.search(rb"^process_max_fds 1\.048576e\+06$", v0, re.M)
    rng = random.Random(1)
    for _ in range(2000):
        v = rng.choice([rng.random(), rng.uniform(0, 1e6), float(rng.randint(0, 10**9)), rng.uniform(1e9, 1e15)])
        legacy = fmt_legacy(v)
        assert float(legacy) == v
        if v < 1e10:
            assert legacy == floatToGoString(v)


@pytest.mark.parametrize("gen", ALL_GENERATIONS)
def test_histogram_invariants(gen: VllmGeneration) -> None:
    inst = make(gen, rps=3.0)
    inst.step(900)
    groups: dict[tuple[str, frozenset[tuple[str, str]]], dict[str, object]] = defaultdict(dict)
    for f in text_string_to_metric_families(inst.render_metrics().decode()):
        if f.type != "histogram":
            continue
        for s in f.samples:
            key = (f.name, frozenset((k, v) for k, v in s.labels.items() if k != "le"))
            g = groups[key]
            if s.name.endswith("_bucket"):
                g.setdefault("buckets", []).append((float(s.labels["le"]), s.value))  # type: ignore[union-attr]
            elif s.name.endswith("_count"):
                g["count"] = s.value
            elif s.name.endswith("_sum"):
                g["sum"] = s.value
    assert groups
    observed = 0
    for key, g in groups.items():
        buckets = sorted(g["buckets"])  # type: ignore[call-overload]
        assert buckets[-1][0] == math.inf, key
        values = [v for _, v in buckets]
        assert values == sorted(values), key  # cumulative
        assert values[-1] == g["count"], key  # +Inf == _count
        assert g["sum"] >= 0, key  # type: ignore[operator]
        count, total = float(g["count"]), float(g["sum"])  # type: ignore[arg-type]
        if count:
            observed += 1
            # every observation is > the last empty bucket's edge and <= the first full bucket's edge
            floor = max((le for le, v in buckets if v == 0), default=-math.inf)
            ceiling = min(le for le, v in buckets if v == count)
            assert floor * count <= total + 1e-6, key
            assert ceiling == math.inf or total <= ceiling * count + 1e-6, key
    assert observed >= 6


@pytest.mark.parametrize("gen", ALL_GENERATIONS)
def test_counters_never_decrease_and_gauges_stay_in_range(gen: VllmGeneration) -> None:
    inst = make(gen, seed=11, rps=2.5)
    rng = random.Random(5)
    prev = monotonic_series(inst.render_metrics())
    changed = False
    for _ in range(40):
        inst.step(rng.choice([0.05, 0.5, 1.7, 7.0, 30.0, 95.0]))
        body = inst.render_metrics()
        cur = monotonic_series(body)
        for key, value in prev.items():
            assert cur[key] >= value, key
            changed = changed or cur[key] > value
        prev = cur
        for s in samples(body):
            if s.name in ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "vllm:cpu_cache_usage_perc"):
                assert 0.0 <= s.value <= 1.0, s
            elif s.name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:num_requests_swapped"):
                assert s.value >= 0, s
                assert s.value == int(s.value), s
    assert changed


def test_load_produces_preemptions_and_queueing_sometimes() -> None:
    inst = make(VllmGeneration.V1, seed=2, rps=4.0, max_model_len=8192)
    waiting_seen = 0.0
    for _ in range(120):
        inst.step(15)
        waiting_seen = max(waiting_seen, inst._ems[0].waiting.v)
    fams = parse(inst.render_metrics())
    preemptions = fams["vllm:num_preemptions"].samples[0].value  # type: ignore[attr-defined]
    assert preemptions > 0
    assert waiting_seen > 0


def test_v0_6_is_a_multiprocess_registry() -> None:
    inst = make(VllmGeneration.V0_6)
    inst.step(120)
    body = inst.render_metrics()
    fams = parse(body)
    assert not [n for n in fams if n.startswith(("python_", "process_"))]
    assert not [n for n in fams if n.endswith("_created")]
    assert not [n for n in fams if "spec_decode" in n or "best_of" in n]
    for name in ("vllm:gpu_prefix_cache_hit_rate", "vllm:cpu_prefix_cache_hit_rate"):
        assert [s.value for s in fams[name].samples] == [-1.0]  # type: ignore[attr-defined]
    assert "is_attention_free" in fams["vllm:cache_config_info"].samples[0].labels  # type: ignore[attr-defined]
    # MultiProcessCollector writes a histogram's _sum before its buckets
    text = body.decode()
    assert text.index("vllm:e2e_request_latency_seconds_sum{") < text.index("vllm:e2e_request_latency_seconds_bucket{")


def test_v0_5_specifics() -> None:
    inst = make(VllmGeneration.V0_5)
    inst.step(120)
    fams = parse(inst.render_metrics())
    info = fams["vllm:cache_config_info"]
    assert info.documentation == "information of cache_config"  # type: ignore[attr-defined]
    assert "model_name" not in info.samples[0].labels  # type: ignore[attr-defined]
    assert "vllm:request_params_best_of" in fams
    assert "vllm:time_per_output_token_seconds" in fams
    assert not [n for n in fams if n.endswith("_created") or n.startswith("http_")]
    assert all("engine" not in s.labels for f in fams.values() for s in f.samples)  # type: ignore[attr-defined]


def test_v1_10_carries_deprecated_and_new_names() -> None:
    inst = make(VllmGeneration.V1_10)
    inst.step(120)
    fams = parse(inst.render_metrics())
    assert "DEPRECATED" in fams["vllm:gpu_cache_usage_perc"].documentation  # type: ignore[attr-defined]
    gpu = fams["vllm:gpu_cache_usage_perc"].samples[0]  # type: ignore[attr-defined]
    kv = fams["vllm:kv_cache_usage_perc"].samples[0]  # type: ignore[attr-defined]
    assert gpu.value == kv.value
    assert gpu.labels == {"engine": "0", "model_name": "qwen3-8b"}
    for name in (
        "vllm:time_per_output_token_seconds",
        "vllm:inter_token_latency_seconds",
        "vllm:gpu_prefix_cache_queries",
        "vllm:prefix_cache_queries",
        "vllm:prompt_tokens_created",
        "http_requests",
    ):
        assert name in fams, name
    assert "vllm:request_time_per_output_token_seconds" not in fams
    reasons = {s.labels["finished_reason"] for s in fams["vllm:request_success"].samples}  # type: ignore[attr-defined]
    assert reasons == {"stop", "length", "abort"}


def test_v1_engine_label_with_two_engines() -> None:
    inst = make(VllmGeneration.V1, engines=2)
    inst.step(300)
    fams = parse(inst.render_metrics())
    for name, fam in fams.items():
        if not name.startswith("vllm:"):
            continue
        engines = {s.labels.get("engine") for s in fam.samples}  # type: ignore[attr-defined]
        if name.startswith("vllm:admission_rejections"):
            assert engines == {None}
        else:
            assert engines == {"0", "1"}, name
    reasons = {s.labels["finished_reason"] for s in fams["vllm:request_success"].samples}  # type: ignore[attr-defined]
    assert reasons == {"stop", "length", "abort", "error", "repetition"}
    for engine in ("0", "1"):
        tokens = [
            s.value
            for s in fams["vllm:generation_tokens"].samples  # type: ignore[attr-defined]
            if s.labels["engine"] == engine and s.name.endswith("_total")
        ]
        assert tokens[0] > 0


def test_v0_generations_refuse_data_parallel_engines() -> None:
    with pytest.raises(ValueError, match="V1"):
        make(VllmGeneration.V0_6, engines=2)


def test_same_seed_same_values() -> None:
    a, b, c = make(VllmGeneration.V1), make(VllmGeneration.V1), make(VllmGeneration.V1, seed=8)
    for inst in (a, b, c):
        for dt in (3.0, 40.0, 0.5, 100.0):
            inst.step(dt)
    assert a.render_metrics() == b.render_metrics()
    assert a.render_metrics() != c.render_metrics()


def test_models_and_version_bodies() -> None:
    recorded = json.loads((FIXTURES / "vllm-v1-models.json").read_text())
    inst = make(VllmGeneration.V1, max_model_len=32768, extra_models=["qwen3"])
    raw = inst.models_body()
    assert b" " not in raw  # compact
    body = json.loads(raw)
    assert list(body) == list(recorded)
    assert [list(card) for card in body["data"]] == [list(recorded["data"][0])] * 2
    assert list(body["data"][0]["permission"][0]) == list(recorded["data"][0]["permission"][0])
    assert [c["id"] for c in body["data"]] == ["qwen3-8b", "qwen3"]
    assert {c["root"] for c in body["data"]} == {"Qwen/Qwen3-8B"}
    card = body["data"][0]
    assert card["max_model_len"] == 32768
    assert card["parent"] is None
    assert card["owned_by"] == "vllm"
    assert re.fullmatch(r"modelperm-[0-9a-f]{16}", card["permission"][0]["id"])
    assert abs(card["created"] - time.time()) < 5
    assert json.loads(make(VllmGeneration.V0_5).models_body())["data"][0]["root"] == "qwen3-8b"
    assert make(VllmGeneration.V1).version_body() == b'{"version":"0.33.0"}'


def test_demo_and_bulk_fleets() -> None:
    demo = demo_fleet()
    assert {i.generation for i in demo} == set(VllmGeneration)
    assert [i.load_seconds for i in demo].count(20.0) == 1
    assert any(i.engines == 2 and i.generation is VllmGeneration.V1 for i in demo)
    fleet = make_fleet(12, seed=3)
    assert len(fleet) == 12
    assert [(i.model, i.generation, i.engines) for i in fleet] == [
        (i.model, i.generation, i.engines) for i in make_fleet(12, seed=3)
    ]


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
        cwd=REPO_ROOT,
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
