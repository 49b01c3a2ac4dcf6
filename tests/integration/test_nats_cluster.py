"""A real three-node NATS cluster (JetStream, routes on loopback): losing any one node loses nothing."""

from __future__ import annotations

import time

import pytest

from inferwatch.shared.bus import Bus, BusSettings
from inferwatch.shared.kv import open_bucket
from inferwatch.shared.natsserver import EmbeddedNats, NatsCluster
from inferwatch.shared.service import instance_id
from inferwatch.simulators.vllm import SimulatedVllm, VllmGeneration, serve
from tests.support import get_text, running_service, wait_until
from tests.support.aggregator import fresh_sources

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def test_losing_the_aggregators_node_under_load(cluster: NatsCluster) -> None:
    fleet = [SimulatedVllm(f"m{i}", f"org/m{i}", VllmGeneration.V1, "0.33.0", seed=i) for i in range(3)]
    pairs = await serve(fleet)
    env = {
        "NATS_URL": ",".join(cluster.urls),
        "INFERWATCH_VLLM_TARGETS": ",".join(url for url, _ in pairs),
        "INFERWATCH_VLLM_INTERVAL_S": "0.5",
        "INFERWATCH_VLLM_SHARD": "0",
    }
    try:
        async with running_service("aggregator", env) as agg, running_service("vllm-scraper", env):

            async def all_fresh(since: float) -> bool:
                return fresh_sources(await get_text(agg.url + "/metrics"), since) == len(fleet)

            await wait_until(lambda: all_fresh(0), timeout=15, what="every vLLM source on the aggregator")
            name = instance_id("aggregator")
            node = cluster.node_serving(name)
            assert node is not None, "the aggregator's connection is on no node"
            killed_at = time.time()
            started = time.monotonic()
            proc = cluster.nodes[node].proc
            assert proc is not None
            proc.kill()
            proc.wait(5)

            def reconnected() -> bool:
                serving = cluster.node_serving(name)
                return serving is not None and serving != node

            await wait_until(reconnected, timeout=2, what="the aggregator on a surviving node within 2 s")
            reconnect_s = time.monotonic() - started
            await wait_until(lambda: all_fresh(killed_at), timeout=5, what="every source fresh within 5 s")
            back_s = time.monotonic() - started
            print(f"\nnode n{node} killed: aggregator reconnected after {reconnect_s:.2f} s, sources fresh after "
                  f"{back_s:.2f} s")  # fmt: skip
    finally:
        for _, runner in pairs:
            await runner.cleanup()


async def test_key_value_buckets_are_replicated_and_survive_the_loss_of_any_node(cluster: NatsCluster) -> None:
    bus = Bus(BusSettings(servers=tuple(cluster.urls)), name="kv-test")
    await bus.connect()
    try:
        kv = await open_bucket(bus, "cluster_test", ttl_s=3600)
        js = bus.client.jetstream()
        info = await js.stream_info("KV_cluster_test")
        assert info.config.num_replicas == 3
        await kv.put("ledger.p1", b"exact")
        for node in cluster.nodes:
            proc = node.proc
            assert proc is not None
            proc.kill()
            proc.wait(5)

            async def readable() -> bool:
                try:
                    entry = await kv.get("ledger.p1")
                except Exception:  # no leader yet, or the client is moving to another node
                    return False
                return entry.value == b"exact"

            await wait_until(readable, timeout=15, what="the value with one node down")
            node.start()  # back, and caught up, before the next one goes: the quorum is two of three

            async def all_current() -> bool:
                try:
                    cluster_info = (await js.stream_info("KV_cluster_test")).cluster
                except Exception:  # no leader for a moment
                    return False
                replicas = (cluster_info.replicas or []) if cluster_info else []
                return len(replicas) == 2 and all(r.current for r in replicas)

            await wait_until(all_current, timeout=15, what="every replica of the bucket current again")
    finally:
        await bus.close()


async def test_a_single_server_gets_single_replica_buckets(private_nats: EmbeddedNats) -> None:
    bus = Bus(BusSettings(servers=(private_nats.url,)), name="kv-single")
    await bus.connect()
    try:
        await open_bucket(bus, "single_test")
        info = await bus.client.jetstream().stream_info("KV_single_test")
        assert info.config.num_replicas == 1
    finally:
        await bus.close()
