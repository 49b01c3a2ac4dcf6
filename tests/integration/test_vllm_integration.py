"""vllm-scraper for real: simulated vLLM servers over loopback HTTP → scraper → NATS → aggregator."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Awaitable

import pytest

from inferwatch.contracts import AnyEvent
from inferwatch.contracts.subjects import subject_filter
from inferwatch.contracts.vllm import VllmInstanceSnapshot
from inferwatch.shared.bus import Bus, BusSettings
from inferwatch.simulators.vllm import SimulatedVllm, VllmGeneration, make_fleet, serve
from tests.support import free_port, get_text, running_service, service_process, wait_until
from tests.support.dns import SrvServer

pytestmark = pytest.mark.timeout(60)


def sample(body: str, name: str, target: str) -> list[str]:
    return [line for line in body.splitlines() if line.startswith(name + "{") and f'target="{target}"' in line]


async def test_good_and_bad_targets(nats_url: str) -> None:
    faults = ["500", "hang", "garbage", "huge", "bad_utf8", "nan", None, None]
    fleet = [
        SimulatedVllm(
            f"m{i}",
            f"org/m{i}",
            VllmGeneration.V1 if i % 2 else VllmGeneration.V0_6,
            "0.33.0" if i % 2 else "0.6.3",
            seed=i,
        )
        for i in range(len(faults))
    ]
    for inst, fault in zip(fleet, faults, strict=True):
        inst.fault = fault
    pairs = await serve(fleet)
    urls = [url for url, _ in pairs]
    refused = f"http://127.0.0.1:{free_port()}"
    env = {
        "NATS_URL": nats_url,
        "INFERWATCH_VLLM_TARGETS": ",".join([*urls, refused]),
        "INFERWATCH_VLLM_INTERVAL_S": "1",
        "INFERWATCH_VLLM_TIMEOUT_S": "1",
        "INFERWATCH_VLLM_SHARD": "0",
        "INFERWATCH_VLLM_MAX_BODY_BYTES": str(4 * 1024 * 1024),
    }
    try:
        async with (
            running_service("aggregator", env) as agg,
            running_service("vllm-scraper", env) as scraper,
        ):
            url = agg.url + "/metrics"

            async def all_reported() -> str | None:
                body = await get_text(url)
                ok = all(sample(body, "inferwatch_vllm_up", t) for t in [*urls, refused])
                return body if ok else None

            body = await wait_until(all_reported, timeout=15, what="every target reported")
            assert body is not None
            ups = {t: float(sample(body, "inferwatch_vllm_up", t)[0].rsplit(" ", 1)[1]) for t in [*urls, refused]}
            reasons = {}
            for t in [*urls, refused]:
                errs = sample(body, "inferwatch_vllm_scrape_error_info", t)
                reasons[t] = re.search(r'reason="([^"]*)"', errs[0]).group(1) if errs else ""  # type: ignore[union-attr]
            expected = {
                urls[0]: "http_5xx",
                urls[1]: "timeout",
                urls[2]: "parse_error",
                urls[3]: "too_large",
                urls[4]: "parse_error",
            }  # garbage and invalid UTF-8: parse_error
            for t, reason in expected.items():
                assert (ups[t], reasons[t]) == (0.0, reason), t
                assert sample(body, "inferwatch_vllm_scrape_errors_total", t), t
            # Refused: every call fails, so after the first scrape the circuit breaker fails fast.
            assert ups[refused] == 0.0
            assert reasons[refused] in ("connect_error", "circuit_open")
            assert any(
                'reason="connect_error"' in line
                for line in sample(body, "inferwatch_vllm_scrape_errors_total", refused)
            )
            # Good targets carry on, with their engines' series.
            for t in urls[6:]:
                assert ups[t] == 1.0
                assert sample(body, "inferwatch_vllm_requests_running", t)
                assert sample(body, "inferwatch_vllm_time_to_first_token_seconds_bucket", t)
            # NaN values are dropped (None), not exported as fake numbers; the scrape itself is fine.
            assert ups[urls[5]] == 1.0
            assert not sample(body, "inferwatch_vllm_scrape_error_info", urls[5])
            assert await get_text(scraper.url + "/healthz")
    finally:
        await pairs[0][1].cleanup()


@pytest.mark.slow
async def test_three_replicas_share_targets_and_survive_one_killed(nats_url: str) -> None:
    fleet = make_fleet(12, seed=3)
    pairs = await serve(fleet)
    urls = [url for url, _ in pairs]
    interval = 1.0
    env = {
        "NATS_URL": nats_url,
        "INFERWATCH_VLLM_TARGETS": ",".join(urls),
        "INFERWATCH_VLLM_INTERVAL_S": "1",
        "INFERWATCH_HEARTBEAT_INTERVAL_S": "0.4",
        "INFERWATCH_VLLM_SPREAD": "1",
    }
    seen: dict[str, list[tuple[float, str]]] = defaultdict(list)

    async def on_snapshot(event: AnyEvent, _subject: str) -> None:
        if isinstance(event, VllmInstanceSnapshot) and event.source in urls:
            seen[event.source].append((time.monotonic(), event.collector))

    bus = Bus(BusSettings(servers=(nats_url,)), name="test-observer")
    await bus.connect()
    await bus.subscribe(subject_filter("vllm", "instance"), on_snapshot)
    procs = [service_process("vllm-scraper", {**env, "INFERWATCH_LOG_LEVEL": "warning"})[0] for _ in range(3)]
    try:

        def collectors_since(t0: float) -> dict[str, set[str]]:
            return {u: {c for t, c in seen[u] if t >= t0} for u in urls}

        await wait_until(
            lambda: len({c for u in urls for _, c in seen[u]}) == 3, timeout=20, what="all three replicas scraping"
        )
        await asyncio.sleep(2 * interval)  # settle: every replica has seen the others' heartbeats
        t0 = time.monotonic()
        await asyncio.sleep(3 * interval)
        owners = collectors_since(t0)
        assert all(len(c) == 1 for c in owners.values()), owners  # no target scraped by two replicas
        by_replica = defaultdict(list)
        for u, c in owners.items():
            by_replica[next(iter(c))].append(u)
        assert len(by_replica) == 3  # the work is shared
        victim_name, victim_targets = max(by_replica.items(), key=lambda kv: len(kv[1]))
        pid = int(victim_name.rsplit(":", 1)[1])
        victim = next(p for p in procs if p.pid == pid)
        survivors_before = {u: owners[u] for u in urls if u not in victim_targets}
        victim.send_signal(signal.SIGKILL)
        victim.wait(5)
        killed_at = time.monotonic()
        # Every orphaned target is picked up within two intervals (+ the heartbeat expiry) ...
        await wait_until(
            lambda: all(any(t > killed_at and c != victim_name for t, c in seen[u]) for u in victim_targets),
            timeout=10,
            what="orphaned targets taken over",
        )
        took = time.monotonic() - killed_at
        assert took <= 2 * interval + 1.5, took
        # ... and the survivors' own targets did not move.
        await asyncio.sleep(2 * interval)
        after = collectors_since(time.monotonic() - 1.5 * interval)
        for u, owner in survivors_before.items():
            assert after[u] == owner, (u, after[u], owner)
        assert all(len(c) == 1 for c in after.values()), after
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        await bus.close()
        await pairs[0][1].cleanup()


async def test_resolve_dns_a_records() -> None:
    from inferwatch.shared.dns import resolve_dns

    urls = await resolve_dns("localhost:8000")
    assert "http://127.0.0.1:8000" in urls
    assert all(u.endswith(":8000") for u in urls)


async def test_dns_target_scraped(nats_url: str) -> None:
    pairs = await serve([SimulatedVllm("dns-m", "org/dns-m", VllmGeneration.V1, "0.33.0", seed=9)])
    port = int(pairs[0][0].rsplit(":", 1)[1])
    env = {
        "NATS_URL": nats_url,
        "INFERWATCH_VLLM_DNS": f"localhost:{port}",
        "INFERWATCH_VLLM_INTERVAL_S": "0.5",
        "INFERWATCH_VLLM_SHARD": "0",
    }
    try:
        async with (
            running_service("aggregator", env) as agg,
            running_service("vllm-scraper", env),
        ):

            async def up() -> bool:
                body = await get_text(agg.url + "/metrics")
                return any(
                    line.endswith(" 1") for line in sample(body, "inferwatch_vllm_up", f"http://127.0.0.1:{port}")
                )

            await wait_until(up, timeout=10, what="DNS-resolved target scraped")
    finally:
        await pairs[0][1].cleanup()


async def test_grpc_instance_health(nats_url: str) -> None:
    """``vllm serve --grpc`` has no HTTP: loading (NOT_SERVING) → ready (SERVING) → error (server gone)."""
    import grpc  # type: ignore[import-untyped]
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    target = f"grpc://127.0.0.1:{port}"
    env = {
        "NATS_URL": nats_url,
        "INFERWATCH_VLLM_TARGETS": target,
        "INFERWATCH_VLLM_INTERVAL_S": "0.3",
        "INFERWATCH_VLLM_TIMEOUT_S": "1",
        "INFERWATCH_VLLM_SHARD": "0",
        "INFERWATCH_VLLM_SPREAD": "0",
    }
    try:
        async with (
            running_service("aggregator", env) as agg,
            running_service("vllm-scraper", env),
        ):

            async def status_is(status: str, up: str) -> bool:
                body = await get_text(agg.url + "/metrics")
                lines = sample(body, "inferwatch_vllm_model_status", target)
                ups = sample(body, "inferwatch_vllm_up", target)
                return (
                    any(f'status="{status}"' in ln and ln.endswith(" 1") for ln in lines)
                    and bool(ups)
                    and ups[0].endswith(" " + up)
                )

            await wait_until(lambda: status_is("loading", "1"), timeout=10, what="gRPC target loading")
            await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
            await wait_until(lambda: status_is("ready", "1"), timeout=10, what="gRPC target ready")
            await server.stop(None)
            await wait_until(lambda: status_is("error", "0"), timeout=10, what="gRPC target gone")
            body = await get_text(agg.url + "/metrics")
            assert 'reason="grpc_unavailable"' in "\n".join(sample(body, "inferwatch_vllm_scrape_error_info", target))
    finally:
        await server.stop(None)


async def test_srv_records_re_resolved_each_interval(nats_url: str) -> None:
    from inferwatch.shared.dns import resolve_dns

    pairs = await serve(
        [SimulatedVllm(f"srv-{i}", f"org/srv-{i}", VllmGeneration.V1, "0.33.0", seed=i) for i in range(2)]
    )
    ports = [int(url.rsplit(":", 1)[1]) for url, _ in pairs]
    dns_server = SrvServer()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: dns_server, local_addr=("127.0.0.1", 0)
    )
    ns = "127.0.0.1:{}".format(transport.get_extra_info("sockname")[1])
    dns_server.records = [("127.0.0.1", ports[0])]
    assert await resolve_dns("_vllm._tcp.test.internal", ns) == [f"http://127.0.0.1:{ports[0]}"]
    env = {
        "NATS_URL": nats_url,
        "INFERWATCH_VLLM_DNS": "_vllm._tcp.test.internal",
        "INFERWATCH_VLLM_DNS_SERVER": ns,
        "INFERWATCH_VLLM_INTERVAL_S": "0.5",
        "INFERWATCH_VLLM_SHARD": "0",
        "INFERWATCH_VLLM_SPREAD": "0",
    }
    try:
        async with (
            running_service("aggregator", env) as agg,
            running_service("vllm-scraper", env) as scraper,
        ):

            async def scraped(port: int) -> bool:
                body = await get_text(agg.url + "/metrics")
                return bool(sample(body, "inferwatch_vllm_up", f"http://127.0.0.1:{port}"))

            async def targets() -> float:
                body = await get_text(scraper.url + "/readyz")
                return float(re.search(r"scraping (\d+)", body).group(1)) if "scraping" in body else 0.0  # type: ignore[union-attr]

            await wait_until(lambda: scraped(ports[0]), timeout=10, what="SRV target scraped")
            dns_server.records = [("127.0.0.1", ports[1])]  # the record moved
            await wait_until(lambda: scraped(ports[1]), timeout=10, what="new SRV target scraped")
            await wait_until(lambda: _eq_async(targets(), 1.0), timeout=5, what="old SRV target dropped")
    finally:
        transport.close()
        await pairs[0][1].cleanup()


async def _eq_async(value: Awaitable[float], expected: float) -> bool:
    return await value == expected
