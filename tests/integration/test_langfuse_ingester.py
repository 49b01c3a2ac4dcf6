"""langfuse-ingester against the simulator over loopback HTTP: versions, 404 fallbacks, faults, exactness."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import hypothesis  # noqa: F401  (imported at collection: importing it first at session end trips a CPython 3.11 ast bug)
import pytest

from inferwatch.contracts.langfuse import LangfuseProjectSnapshot
from inferwatch.services.langfuse_ingester.app import LangfuseIngester, ProjectState
from inferwatch.services.langfuse_ingester.config import LangfuseIngesterConfig, LangfuseProject
from inferwatch.shared.bus import Bus, BusSettings
from inferwatch.shared.natsserver import NatsCluster
from inferwatch.shared.settings import Env, Secret
from inferwatch.simulators.langfuse import SimulatedLangfuse, make_dataset
from tests.support import service_process, wait_until
from tests.support.langfuse import T0, Clock, MemoryStore, assert_equal_totals, kind_sums, make_ctx, sums


async def ingest_until(ingester: LangfuseIngester, state: ProjectState, watermark: float) -> LangfuseProjectSnapshot:
    snap = await ingester.cycle_project(state)
    for _ in range(50):
        if snap.watermark >= watermark or not snap.up:
            break
        snap = await ingester.cycle_project(state)
    return snap


def config_for(url: str, **overrides: Any) -> LangfuseIngesterConfig:
    project = LangfuseProject(label="p1", url=url, public_key="pk-lf-sim", secret_key=Secret("sk-lf-sim"))
    values: dict[str, Any] = {
        "projects": (project,),
        "bucket_s": 30.0,
        "settle_s": 0.0,
        "recheck_s": 60.0,
        "backfill_s": 300.0,
        "max_new_buckets": 4,
        "timeout_s": 2.0,
        "page_limit": 7,
    }
    values.update(overrides)
    return LangfuseIngesterConfig(**values)


@pytest.mark.parametrize(
    ("major", "endpoints"),
    [
        (2, ["/api/public/traces", "/api/public/observations", "/api/public/scores"]),
        (3, ["/api/public/traces", "/api/public/observations", "/api/public/v2/scores"]),
        (4, ["/api/public/v2/observations", "/api/public/v3/scores"]),
    ],
)
async def test_every_major_gives_the_sources_totals(langfuse_server: Any, major: int, endpoints: list[str]) -> None:
    data = make_dataset(major, T0 - 240, T0 - 60, traces_per_s=0.3).for_major(major)
    sim = SimulatedLangfuse(data, major=major, retention_days=30, clock=Clock(T0))
    config = config_for(await langfuse_server(sim))
    ingester = LangfuseIngester(config, make_ctx(), MemoryStore(), clock=Clock(T0))
    state = ingester.projects[0]
    snap = await ingest_until(ingester, state, T0)
    assert snap.up, snap.error
    assert snap.endpoints == endpoints
    assert snap.retention_days == 30
    assert snap.server_version.startswith(str(major))
    got = sums(snap)
    want = sim.totals(T0 - 300, T0)
    assert_equal_totals(got, want)
    assert (want["score_nulls"] > 0) == (major == 2)  # null values exist only in Langfuse v2
    assert (want["score_unknown_type"] > 0) == (major >= 3)
    assert snap.unique_users
    assert snap.latency
    assert snap.activity_by_hour
    assert sum(snap.activity_by_hour.values()) == want["traces"]
    kinds = kind_sums(snap)
    assert kinds == sim.kinds(T0 - 300, T0)  # by type, level, trace name; traces in sessions
    assert ("TOOL" in kinds["type"]) == (major >= 3)  # the agent types arrived with Langfuse v3
    assert kinds["level"]["WARNING"] > 0
    assert snap.session_lengths is not None
    assert 1 <= snap.session_lengths.traces_p50 <= snap.session_lengths.traces_p99
    await ingester.aclose()


async def test_wrong_version_header_falls_back_on_404(langfuse_server: Any) -> None:
    data = make_dataset(5, T0 - 200, T0 - 100, traces_per_s=0.2)
    sim = SimulatedLangfuse(data, major=4, clock=Clock(T0))
    sim.reported_version = "3.225.4"  # the server says v3 but runs v4 events_only
    ingester = LangfuseIngester(config_for(await langfuse_server(sim)), make_ctx(), MemoryStore(), clock=Clock(T0))
    snap = await ingest_until(ingester, ingester.projects[0], T0)
    assert snap.up
    assert snap.endpoints == ["/api/public/v2/observations", "/api/public/v3/scores"]
    assert sim.requests.get("/traces") == 1  # probed once, answered 404, never asked again
    assert_equal_totals(sums(snap), sim.totals(T0 - 300, T0))
    await ingester.aclose()


async def test_late_rows_and_corrections_are_picked_up_once(langfuse_server: Any) -> None:
    clock = Clock(T0 - 150)
    data = make_dataset(11, T0 - 240, T0 - 120, traces_per_s=0.3, max_lag_s=50.0, update_after_s=70.0)
    sim = SimulatedLangfuse(data, major=3, clock=clock)
    config = config_for(await langfuse_server(sim), settle_s=5.0, recheck_s=150.0)
    store = MemoryStore()
    ingester = LangfuseIngester(config, make_ctx(), store, clock=clock)
    state = ingester.projects[0]
    first = await ingest_until(ingester, state, T0 - 180)
    early = sums(first)
    final_truth = sim.totals(T0 - 300, first.watermark)
    assert early["observations"] < final_truth["observations"] or early["cost_usd"] < final_truth["cost_usd"]
    for step in range(12):  # time passes: late rows land and corrections happen; re-checks replace buckets
        clock.now += 15
        snap = await ingester.cycle_project(state)
        assert snap.up
        if step == 5:  # a restart in the middle: the saved ledger continues without double counting
            await ingester.aclose()
            ingester = LangfuseIngester(config, make_ctx(), store, clock=clock)
            state = ingester.projects[0]
    assert_equal_totals(sums(snap), sim.totals(T0 - 300, snap.watermark))
    await ingester.aclose()


@pytest.mark.parametrize(("fault", "outcome"), [("500", "http_5xx"), ("timeout", "timeout"), ("auth", "http_401")])
async def test_faults_are_counted_and_keep_the_totals(langfuse_server: Any, fault: str, outcome: str) -> None:
    data = make_dataset(3, T0 - 200, T0 - 100, traces_per_s=0.2)
    sim = SimulatedLangfuse(data, major=3, clock=Clock(T0))
    config = config_for(await langfuse_server(sim), timeout_s=0.3)
    ingester = LangfuseIngester(config, make_ctx(), MemoryStore(), clock=Clock(T0))
    state = ingester.projects[0]
    good = await ingest_until(ingester, state, T0)
    if fault == "auth":
        sim.secret_key = "sk-lf-rotated"
    else:
        sim.fault = fault
    bad = await ingester.cycle_project(state)
    assert not bad.up
    assert bad.error == outcome
    assert bad.errors_total == {outcome: 1.0}
    assert sums(bad) == sums(good)
    assert bad.watermark == good.watermark
    sim.fault, sim.secret_key = "", "sk-lf-sim"
    await asyncio.sleep(0)  # the breaker allows the next call (one failure is under its threshold)
    again = await ingester.cycle_project(state)
    assert again.up
    assert sums(again) == sums(good)
    await ingester.aclose()


async def test_counts_as_strings_and_two_projects(langfuse_server: Any) -> None:
    data = make_dataset(9, T0 - 200, T0 - 100, traces_per_s=0.2)
    strings = SimulatedLangfuse(data, major=4, clock=Clock(T0))
    strings.fault = "strings"
    plain = SimulatedLangfuse(data, major=3, clock=Clock(T0))
    a, b = await langfuse_server(strings), await langfuse_server(plain)
    base = config_for(a)
    projects = (
        base.projects[0],
        LangfuseProject(label="p2", url=b, public_key="pk-lf-sim", secret_key=Secret("sk-lf-sim")),
    )
    config = config_for(a, projects=projects)
    ingester = LangfuseIngester(config, make_ctx(), MemoryStore(), clock=Clock(T0))
    snaps = [await ingest_until(ingester, s, T0) for s in ingester.projects]
    assert [s.source for s in snaps] == ["p1", "p2"]
    assert_equal_totals(sums(snaps[0]), sums(snaps[1]))
    assert_equal_totals(sums(snaps[0]), strings.totals(T0 - 300, T0))
    await ingester.aclose()


# ------------------------------------------------------------------------------------------------------------
# Exactness across SIGKILL: a real subprocess, a real NATS JetStream KV, a live simulator.


@pytest.mark.slow
@pytest.mark.parametrize("topology", ["server", "cluster"])
async def test_exact_totals_across_random_kills(
    topology: str, langfuse_server: Any, nats_url: str, tmp_path: Path
) -> None:
    """SIGKILLs at random points lose and double-count nothing; on a 3-node cluster the node leading the
    ledger's bucket is killed first, then the ingester, and the totals are still exact."""
    cluster = NatsCluster(3) if topology == "cluster" else None
    nats_urls = cluster.start() if cluster is not None else [nats_url]
    rng = random.Random(int(os.environ.get("LANGFUSE_KILL_SEED", "5")))
    now = time.time()
    data = make_dataset(21, now - 40, now + 4, traces_per_s=3.0, max_lag_s=1.5, update_after_s=2.5)
    sim = SimulatedLangfuse(data, major=4)
    url = await langfuse_server(sim)
    kv_bucket = f"lf_exact_{os.getpid()}_{rng.randrange(1 << 30)}"
    env = {
        **os.environ,
        "NATS_URL": ",".join(nats_urls),
        "INFERWATCH_LANGFUSE_URL": url,
        "INFERWATCH_LANGFUSE_PUBLIC_KEY": sim.public_key,
        "INFERWATCH_LANGFUSE_SECRET_KEY": sim.secret_key,
        "INFERWATCH_LANGFUSE_PROJECT": "exact",
        "INFERWATCH_LANGFUSE_BUCKET_S": "2",
        "INFERWATCH_LANGFUSE_SETTLE_S": "1",
        "INFERWATCH_LANGFUSE_RECHECK_S": "6",
        "INFERWATCH_LANGFUSE_BACKFILL_S": "50",
        "INFERWATCH_LANGFUSE_INTERVAL_S": "0.2",
        "INFERWATCH_LANGFUSE_MAX_NEW_BUCKETS": "3",
        "INFERWATCH_LANGFUSE_KV_BUCKET": kv_bucket,
        "INFERWATCH_LOG_LEVEL": "warning",
        "INFERWATCH_HEARTBEAT_INTERVAL_S": "1",
    }
    snaps: list[LangfuseProjectSnapshot] = []
    bus = Bus(BusSettings(servers=tuple(nats_urls)), name="exactness")
    await bus.connect()

    async def on_event(event: Any, _subject: str) -> None:
        if isinstance(event, LangfuseProjectSnapshot) and event.source == "exact":
            snaps.append(event)

    await bus.subscribe("inferwatch.v1.>", on_event)

    def spawn() -> subprocess.Popen[bytes]:
        return service_process("langfuse-ingester", env, stderr=log_file)[0]

    log_file = (tmp_path / "ingester.log").open("wb")
    kills = 0
    proc = spawn()
    try:
        for i in range(4):  # SIGKILL at a random point during ingest, then restart
            seen = len(snaps)
            await wait_until(lambda seen=seen: len(snaps) > seen, timeout=15, what="a snapshot before the kill")
            if cluster is not None and i == 0:  # the node leading the ledger's bucket goes first
                info = await bus.client.jetstream().stream_info(f"KV_{kv_bucket}")
                assert info.config.num_replicas == 3
                assert info.cluster is not None
                assert info.cluster.leader is not None
                node = cluster.nodes[int(info.cluster.leader.removeprefix("n"))]
                assert node.proc is not None
                node.proc.kill()
                seen = len(snaps)
                await wait_until(lambda seen=seen: len(snaps) > seen, timeout=15, what="ingest going on, node lost")
            await asyncio.sleep(rng.uniform(0.0, 0.6))
            proc.send_signal(signal.SIGKILL)
            proc.wait(5)
            kills += 1
            proc = spawn()
        end = now + 4
        await wait_until(
            lambda: snaps and snaps[-1].watermark >= end + 6 and snaps[-1].up,
            timeout=30,
            what="watermark past the data and its re-check window",
        )
        last = snaps[-1]
        truth = sim.totals(0, last.watermark)
        assert truth["traces"] > 50
        assert_equal_totals(sums(last), truth)
        assert kind_sums(last) == sim.kinds(0, last.watermark)  # the new counters are as exact
        assert kills == 4
        watermarks = [s.watermark for s in snaps]
        assert watermarks == sorted(watermarks)  # never went back after a restart
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        await bus.close()
        log_file.close()
        if cluster is not None:
            cluster.close()
        print((tmp_path / "ingester.log").read_text()[-3000:])


# ------------------------------------------------------------------------------------------------------------
# The demo wiring and the aggregator's series


async def test_demo_env_feeds_the_aggregator_series() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from inferwatch.services.aggregator.domains.langfuse import RENDERERS
    from inferwatch.services.aggregator.render import SeriesWriter, render_exposition
    from inferwatch.simulators.langfuse import start_demo

    demo = await start_demo()
    try:
        config = LangfuseIngesterConfig.from_env(Env(demo.env))
        assert config.projects[0].label == "demo"
        assert config.segment_tag_prefix == "tier:"
        ingester = LangfuseIngester(config, make_ctx(), MemoryStore())
        snap = await ingester.cycle_project(ingester.projects[0])
        await ingester.aclose()
    finally:
        await demo.stop()
    assert snap.up
    assert snap.retention_days == 30
    writer = SeriesWriter()
    RENDERERS[LangfuseProjectSnapshot](snap, writer)
    text = render_exposition([writer.freeze()]).decode()
    families = {f.name.removesuffix("_total"): f for f in text_string_to_metric_families(text)}
    cost = families["inferwatch_langfuse_cost_usd"]
    assert cost.type == "counter"
    models = {s.labels["model"] for s in cost.samples}
    users = {s.labels["user"] for s in cost.samples}
    segments = {s.labels["segment"] for s in cost.samples}
    assert {"gpt-4o-mini", "gpt-4o-2024-08-06"} <= models
    assert len(users) > 2
    assert {"gold", "free"} <= segments
    assert sum(s.value for s in cost.samples if s.name.endswith("_total")) == pytest.approx(sums(snap)["cost_usd"])
    tokens = families["inferwatch_langfuse_tokens"]
    assert {s.labels["direction"] for s in tokens.samples} == {"input", "output", "total"}
    latency = families["inferwatch_langfuse_latency_seconds"]
    assert {s.labels["quantile"] for s in latency.samples} == {"0.5", "0.9", "0.99"}
    assert all(0 < s.value < 300 for s in latency.samples)  # seconds, not milliseconds
    assert families["inferwatch_langfuse_score_value"].type == "histogram"
    assert {s.labels["data_type"] for s in families["inferwatch_langfuse_scores"].samples} == {
        "NUMERIC",
        "BOOLEAN",
        "CATEGORICAL",
    }
    assert families["inferwatch_langfuse_window_unique_users"].samples[0].value > 2
    assert families["inferwatch_langfuse_activity_traces"].samples
    assert families["inferwatch_langfuse_bad_rows"].samples[0].labels["reason"] == "score_unknown_type"
