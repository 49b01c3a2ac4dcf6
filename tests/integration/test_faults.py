"""Faults beyond the ordinary bad target: cardinality bombs, flapping targets, a Docker event stream cut
mid-object, many sources. Every test is bounded in time; each checks that the fault is counted and that
everything else carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientSession, UnixConnector, web

from inferwatch.contracts import decode
from inferwatch.contracts.docker import ContainerLifecycle, DockerHostSnapshot
from inferwatch.services.vllm_scraper.core import MAX_LABEL_VALUES
from inferwatch.shared.bus import Bus, BusSettings
from inferwatch.simulators.docker_engine import FakeContainer, FakeDockerEngine, container_id, serve_engine
from inferwatch.simulators.vllm import SimulatedVllm, VllmGeneration, serve
from tests.support import free_port, get_text, running_service, wait_until

pytestmark = pytest.mark.timeout(90)


def lines_of(body: str, name: str, **labels: str) -> list[str]:
    """Sample lines of family ``name`` whose label block includes every ``labels`` pair."""
    return [
        line
        for line in body.splitlines()
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items())
    ]


def value_of(line: str) -> float:
    return float(line.rsplit(" ", 1)[1])


# ---- cardinality bomb -----------------------------------------------------------------------------


class BombTarget:
    """A vLLM look-alike whose every scrape shows ``count`` brand-new ``model_name`` values."""

    def __init__(self, count: int, served: str, extra_cards: int) -> None:
        self.count = count
        self.served = served
        self.extra_cards = extra_cards
        self.scrapes = 0

    async def metrics(self, _: web.Request) -> web.Response:
        self.scrapes += 1
        n = self.scrapes
        out = ["# TYPE vllm:num_requests_running gauge"]
        out += [f'vllm:num_requests_running{{engine="0",model_name="flood-{n}-{i:05d}"}} 1' for i in range(self.count)]
        out.append(f'vllm:num_requests_running{{engine="0",model_name="{self.served}"}} 3')
        out.append("# TYPE vllm:request_success counter")
        out += [
            f'vllm:request_success_total{{engine="0",finished_reason="r{n}-{i}",model_name="{self.served}"}} 1'
            for i in range(40)
        ]
        return web.Response(text="\n".join(out) + "\n", content_type="text/plain")

    async def health(self, _: web.Request) -> web.Response:
        return web.Response()

    async def models(self, _: web.Request) -> web.Response:
        cards = [{"id": self.served, "root": "org/real", "max_model_len": 4096}]
        cards += [{"id": f"lora-{i}", "root": f"/adapters/{i}", "parent": self.served} for i in range(self.extra_cards)]
        return web.json_response({"object": "list", "data": cards})

    async def version(self, _: web.Request) -> web.Response:
        return web.json_response({"version": "0.33.0"})


@contextlib.asynccontextmanager
async def serve_app(app: web.Application, port: int = 0) -> AsyncIterator[str]:
    """Serve an aiohttp app on loopback until the block ends."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port or free_port(), reuse_address=True)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._port}"  # the bound port (0 asks for a free one)
    finally:
        await runner.cleanup()


async def test_cardinality_bomb_is_capped_counted_and_isolated(nats_url: str) -> None:
    bomb = BombTarget(count=10_000, served="zz-real", extra_cards=300)
    app = web.Application()
    app.router.add_get("/metrics", bomb.metrics)
    app.router.add_get("/health", bomb.health)
    app.router.add_get("/v1/models", bomb.models)
    app.router.add_get("/version", bomb.version)
    normal = SimulatedVllm("calm", "org/calm", VllmGeneration.V1, "0.33.0", engines=2, seed=3)
    [(normal_url, runner)] = await serve([normal])
    env = {
        "NATS_URL": nats_url,
        "INFERWATCH_VLLM_INTERVAL_S": "0.5",
        "INFERWATCH_VLLM_SHARD": "0",
        "INFERWATCH_VLLM_SPREAD": "0",
    }
    try:
        async with serve_app(app) as bomb_url:
            env["INFERWATCH_VLLM_TARGETS"] = f"{bomb_url},{normal_url}"
            async with (
                running_service("aggregator", env) as agg,
                running_service("vllm-scraper", env),
            ):

                async def bomb_reported() -> str | None:
                    body = await get_text(agg.url + "/metrics")
                    done = lines_of(body, "inferwatch_vllm_dropped_series", target=bomb_url, reason="max_engines")
                    calm = lines_of(body, "inferwatch_vllm_requests_running", target=normal_url)
                    return body if done and calm else None

                first = await wait_until(bomb_reported, timeout=20, what="the bomb target's capped snapshot")
                first_scrape = bomb.scrapes
                await wait_until(lambda: bomb.scrapes >= first_scrape + 3, timeout=20, what="three more scrapes")

                async def newer_names() -> str | None:
                    body = await bomb_reported()
                    return body if body and flood_rounds(body, bomb_url) - flood_rounds(first, bomb_url) else None

                later = await wait_until(newer_names, timeout=10, what="a later scrape's flood in /metrics")
    finally:
        await runner.cleanup()
    for body in (first, later):
        running = lines_of(body, "inferwatch_vllm_requests_running", target=bomb_url)
        assert len(running) == 32, len(running)  # INFERWATCH_VLLM_MAX_ENGINES default
        assert any('model_name="zz-real"' in line for line in running)  # the served model survives the flood
        [engines_dropped] = lines_of(body, "inferwatch_vllm_dropped_series", target=bomb_url, reason="max_engines")
        assert value_of(engines_dropped) == 10_001 - 32
        [reasons_dropped] = lines_of(
            body, "inferwatch_vllm_dropped_series", target=bomb_url, reason="max_finished_reasons"
        )
        assert value_of(reasons_dropped) == 40 - MAX_LABEL_VALUES
        [models_dropped] = lines_of(body, "inferwatch_vllm_dropped_series", target=bomb_url, reason="max_models")
        assert value_of(models_dropped) == 301 - 256
        assert len(lines_of(body, "inferwatch_vllm_request_success_total", target=bomb_url)) == MAX_LABEL_VALUES
        # series of the bomb target, all families together: bounded by the caps, not by what it offered
        bomb_lines = [line for line in body.splitlines() if f'target="{bomb_url}"' in line]
        assert len(bomb_lines) < 400, len(bomb_lines)
        # the other target is untouched
        assert value_of(lines_of(body, "inferwatch_vllm_up", target=normal_url)[0]) == 1.0
        assert len(lines_of(body, "inferwatch_vllm_requests_running", target=normal_url)) == 2
        assert not lines_of(body, "inferwatch_vllm_dropped_series", target=normal_url)
    # the flood's names change every scrape, yet the count of series naming them does not grow, in any family
    # (vLLM's, the SLOs' per model): no leak of old names. The whole body may grow by families that appear once
    # (the other target's SLO burn rates once it has requests, upstream-call records, API-server handlers).
    flood_series = [len(re.findall(r'="flood-\d+-', body)) for body in (first, later)]
    assert 0 < flood_series[1] <= flood_series[0], flood_series
    assert len(flood_rounds(later, bomb_url)) == 1
    assert not flood_rounds(later, bomb_url) & flood_rounds(first, bomb_url)


def flood_rounds(body: str, target: str) -> set[str]:
    """Which scrapes' flood names (``flood-<scrape>-…``) the aggregator shows for ``target``."""
    return set(
        re.findall(
            r'model_name="flood-(\d+)-', "\n".join(lines_of(body, "inferwatch_vllm_requests_running", target=target))
        )
    )


# ---- flapping target ------------------------------------------------------------------------------


async def test_flapping_target_counts_failures_and_leaks_no_series(nats_url: str) -> None:
    flappy = SimulatedVllm("flappy", "org/flappy", VllmGeneration.V1, "0.33.0", engines=2, seed=5)
    steady = SimulatedVllm("steady", "org/steady", VllmGeneration.V1, "0.33.0", engines=1, seed=6)
    [(steady_url, steady_runner)] = await serve([steady])
    port = free_port()
    flappy_url = f"http://127.0.0.1:{port}"
    env = {
        "NATS_URL": nats_url,
        "INFERWATCH_VLLM_TARGETS": f"{flappy_url},{steady_url}",
        "INFERWATCH_VLLM_INTERVAL_S": "0.4",
        "INFERWATCH_VLLM_TIMEOUT_S": "1",
        "INFERWATCH_VLLM_SHARD": "0",
        "INFERWATCH_VLLM_SPREAD": "0",
    }
    up_seen: set[float] = set()
    engine_counts: set[int] = set()
    body_sizes: list[int] = []
    errors: list[float] = []
    flips = 0

    async def flap() -> None:
        nonlocal flips
        while True:  # up for a while, then the port refuses connections, and again
            [(_, runner)] = await serve([flappy], base_port=port)
            await asyncio.sleep(0.7)
            await runner.cleanup()
            await asyncio.sleep(0.7)
            flips += 1

    try:
        async with (
            running_service("aggregator", env) as agg,
            running_service("vllm-scraper", env) as scraper,
        ):
            flapper = asyncio.create_task(flap())
            try:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 9
                while loop.time() < deadline:
                    body = await get_text(agg.url + "/metrics")
                    if up := lines_of(body, "inferwatch_vllm_up", target=flappy_url):
                        up_seen.add(value_of(up[0]))
                        engine_counts.add(len(lines_of(body, "inferwatch_vllm_requests_running", target=flappy_url)))
                        # the flapping target's own series, less the API server's per-handler families, which gain
                        # a handler the first time the scraper calls it (new label values once, not per comeback);
                        # the SLO series carry no target label (per model, kept across restarts by design)
                        body_sizes.append(
                            sum(
                                f'target="{flappy_url}"' in line and not line.startswith("inferwatch_vllm_http_")
                                for line in body.splitlines()
                            )
                        )
                    # (absent while the source is expired: a scrape slower than 3 intervals on a busy machine)
                    if failures := lines_of(body, "inferwatch_vllm_scrape_errors_total", target=flappy_url):
                        errors.append(sum(value_of(x) for x in failures))
                    steady_up = lines_of(body, "inferwatch_vllm_up", target=steady_url)
                    assert not steady_up or value_of(steady_up[0]) == 1.0  # the other target never suffers
                    await asyncio.sleep(0.15)
            finally:
                flapper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flapper
            final = await get_text(agg.url + "/metrics")
            scraper_body = await get_text(scraper.url + "/metrics")
    finally:
        await steady_runner.cleanup()
    assert flips >= 4
    assert up_seen == {0.0, 1.0}  # the target's state follows it
    assert engine_counts == {0, 2}  # its engine series come back when up, and go when down
    assert errors[-1] > errors[0] >= 0  # failures keep being counted
    assert errors == sorted(errors)  # a counter: never goes back
    reasons = {
        re.search(r'reason="([^"]+)"', x).group(1)  # type: ignore[union-attr]
        for x in lines_of(final, "inferwatch_vllm_scrape_errors_total", target=flappy_url)
    }
    assert reasons <= {"connect_error", "circuit_open", "timeout", "read_error"}  # read_error: cut mid-response
    assert "connect_error" in reasons
    # no growth: the series of each state are replaced, never accumulated
    half = len(body_sizes) // 2
    assert max(body_sizes[half:]) <= max(body_sizes[:half]) + 10, body_sizes
    sources = [x for x in final.splitlines() if x.startswith("inferwatch_aggregator_sources ")]
    assert sources
    assert value_of(sources[0]) < 20  # the flapping target stays one source, not one per comeback
    # the scraper's own view: refused connections counted per call
    refused = [
        x
        for x in lines_of(scraper_body, "inferwatch_upstream_requests_total", outcome="connect_error")
        if f'"{flappy_url}' in x or "vllm" in x
    ]
    assert refused
    assert sum(value_of(x) for x in refused) > 0


# ---- Docker event stream cut in the middle of an event ---------------------------------------------


class CuttingDockerProxy:
    """A Docker API proxy on a unix socket that can cut the ``/events`` stream in the middle of a JSON object.

    Everything is forwarded to the fake engine; once ``cut_next`` is set, the next event is sent half-way and
    the connection is dropped, the way a daemon restart or a proxy timeout cuts it.
    """

    def __init__(self, engine_socket: str) -> None:
        self.engine_socket = engine_socket
        self.cut_next = False
        self.cuts = 0
        self.events_connections = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Forward one request (streaming ``/events``)."""
        async with (
            ClientSession(connector=UnixConnector(path=self.engine_socket)) as session,
            session.get(f"http://docker{request.path_qs}") as upstream,
        ):
            if not request.path.endswith("/events"):
                body = await upstream.read()
                return web.Response(
                    body=body, status=upstream.status, content_type=upstream.content_type or "application/json"
                )
            self.events_connections += 1
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            async for line in upstream.content:  # the fake engine writes one JSON object per line
                if self.cut_next:
                    self.cut_next = False
                    self.cuts += 1
                    await response.write(line[: len(line) // 2])  # half an object, then the connection goes
                    await asyncio.sleep(0.05)
                    assert request.transport is not None
                    request.transport.close()
                    return response
                await response.write(line)
            return response


async def test_docker_event_stream_cut_mid_event_reconnects_and_resyncs(nats_url: str) -> None:
    tag = uuid.uuid4().hex[:6]
    workdir = tempfile.mkdtemp(prefix="iw-dockercut-")
    engine_socket, proxy_socket = os.path.join(workdir, "engine.sock"), os.path.join(workdir, "proxy.sock")
    engine = FakeDockerEngine(name=f"cut-{tag}")
    web_id = container_id(f"web-{tag}")
    engine.add(FakeContainer(id=web_id, name=f"web-{tag}", image="nginx:1.27", cmd=["nginx"]))
    engine.start(web_id)
    engine_runner = await serve_engine(engine, engine_socket)
    proxy = CuttingDockerProxy(engine_socket)
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", proxy.handle)
    proxy_runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, handler_cancellation=True)
    await proxy_runner.setup()
    await web.UnixSite(proxy_runner, proxy_socket).start()
    snapshots: list[DockerHostSnapshot] = []
    lifecycles: list[ContainerLifecycle] = []
    listener = Bus(BusSettings(servers=(nats_url,)), name="cut-listener")
    await listener.connect()

    async def collect(msg: Any) -> None:
        event = decode(msg.data)
        if isinstance(event, DockerHostSnapshot) and event.source.endswith(f"cut-host-{tag}"):
            snapshots.append(event)
        elif isinstance(event, ContainerLifecycle) and event.host == f"cut-host-{tag}":
            lifecycles.append(event)

    await listener.subscribe_raw("inferwatch.v1.>", collect)
    # resync_s is long: only the reconnect's own resync can repair what the cut lost
    env = {
        "NATS_URL": nats_url,
        "DOCKER_HOST": f"unix://{proxy_socket}",
        "INFERWATCH_DOCKER_HOST_NAME": f"cut-host-{tag}",
        "INFERWATCH_DOCKER_INTERVAL_S": "0.3",
        "INFERWATCH_DOCKER_RESYNC_S": "300",
        "INFERWATCH_DOCKER_MAX_BACKOFF_S": "1",
        "INFERWATCH_DOCKER_FOLLOW_LOGS": "0",
    }

    def state_of(name: str) -> str | None:
        if not snapshots:
            return None
        found = [c.state for c in snapshots[-1].containers if c.name == name]
        return found[0] if found else None

    try:
        async with running_service("docker-watcher", env) as watcher:
            await wait_until(lambda: state_of(f"web-{tag}") == "running", timeout=15, what="web running")
            await wait_until(lambda: proxy.events_connections >= 1, timeout=5, what="the event stream")
            proxy.cut_next = True
            engine.kill(web_id)  # "kill" arrives half-written, "die" never on this connection
            other_id = container_id(f"db-{tag}")
            engine.add(FakeContainer(id=other_id, name=f"db-{tag}", image="postgres:16", cmd=["postgres"]))
            engine.start(other_id)  # happens while the watcher is disconnected: events lost for good
            await wait_until(lambda: proxy.cuts == 1, timeout=5, what="the cut")
            await wait_until(lambda: proxy.events_connections >= 2, timeout=15, what="the watcher reconnecting")
            await wait_until(
                lambda: state_of(f"web-{tag}") == "exited" and state_of(f"db-{tag}") == "running",
                timeout=15,
                what="state repaired by the resync",
            )
            # the new stream works: a later event is seen as an event again
            engine.destroy(other_id)
            await wait_until(
                lambda: any(e.action == "destroy" and e.source == other_id for e in lifecycles),
                timeout=10,
                what="an event on the new stream",
            )
            await wait_until(lambda: state_of(f"db-{tag}") is None, timeout=10, what="db gone")
            readyz = await get_text(watcher.url + "/readyz")
    finally:
        await listener.close()
        await proxy_runner.cleanup()
        await engine.close_streams()
        await engine_runner.cleanup()
    assert proxy.cuts == 1
    assert "watching Docker" in readyz
    assert state_of(f"web-{tag}") == "exited"
