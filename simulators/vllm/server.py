"""The HTTP side of the simulator: routes, faults, and serving many instances on shared runners."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable

from aiohttp import web

from inferwatch.simulators.vllm.instance import FAULTS, SimulatedVllm

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""``Content-Type`` of ``/metrics`` (prometheus_client's ``CONTENT_TYPE_LATEST`` for the 0.0.4 text format)."""

HUGE_BODY_BYTES = 50 * 1024 * 1024
"""The ``huge`` fault streams at least this many bytes."""

_HANG_S = 3600.0
_DRIBBLE_INTERVAL_S = 0.1
_HDRS = {"Server": "uvicorn"}
_METRICS_HDRS = {"Content-Type": METRICS_CONTENT_TYPE, "Server": "uvicorn"}
_JSON_HDRS = {"Content-Type": "application/json", "Server": "uvicorn"}
_GARBAGE = (
    b"# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
    b"# TYPE vllm:num_requests_running gauge\n"
    b'vllm:num_requests_running{engine="0",model_name="x" 14.0\n'
    b"vllm:kv_cache_usage_perc{engine=0} not-a-number\n"
    b"<html><body><h1>502 Bad Gateway</h1></body></html>\n"
    b"}}}{{{ = = =\n"
)
_PAD_LINE = b"# inferwatch simulator padding for the huge-body fault .........\n"
_PAD_CHUNK = _PAD_LINE * (1024 * 1024 // len(_PAD_LINE))


def _local_port(request: web.Request) -> int:
    transport = request.transport
    if transport is None:
        raise web.HTTPServiceUnavailable()
    return int(transport.get_extra_info("sockname")[1])


class _Routes:
    def __init__(
        self, resolve: Callable[[web.Request], SimulatedVllm], api_key: str | None, clock: Callable[[], float]
    ) -> None:
        self._resolve = resolve
        self._api_key = api_key
        self._clock = clock

    def _get(self, request: web.Request) -> tuple[SimulatedVllm, float]:
        inst = self._resolve(request)
        now = self._clock()
        inst.touch(now)
        return inst, now

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        inst, now = self._get(request)
        if inst.loading(now):
            return web.Response(status=503, headers=_HDRS)
        fault = inst.fault
        if fault is not None and fault in FAULTS:
            return await self._fault(request, inst, now, fault)
        return web.Response(body=inst.metrics_at(now), headers=_METRICS_HDRS)

    async def _fault(self, request: web.Request, inst: SimulatedVllm, now: float, fault: str) -> web.StreamResponse:
        if fault == "500":
            return web.Response(status=500, text="Internal Server Error", headers=_HDRS)
        if fault == "hang":
            deadline = time.monotonic() + _HANG_S
            while time.monotonic() < deadline:
                transport = request.transport
                if transport is None or transport.is_closing():
                    break
                await asyncio.sleep(0.25)
            return web.Response(status=503, headers=_HDRS)
        if fault == "garbage":
            return web.Response(body=_GARBAGE, headers=_METRICS_HDRS)
        if fault == "nan":
            inst.advance(now)
            return web.Response(body=inst.render_metrics(nan=True), headers=_METRICS_HDRS)
        body = inst.metrics_at(now)
        if fault == "bad_utf8":
            body = body.replace(b'model_name="', b'model_name="\xc3\x28\xff', 1)
            return web.Response(body=body + b"# \xfe\xff trailing bytes\n", headers=_METRICS_HDRS)
        resp = web.StreamResponse(headers=_METRICS_HDRS)
        if fault == "dribble":
            resp.content_length = len(body)
            await resp.prepare(request)
            with contextlib.suppress(ConnectionError):
                for i in range(len(body)):
                    await resp.write(body[i : i + 1])
                    await asyncio.sleep(_DRIBBLE_INTERVAL_S)
            return resp
        # huge: the real body, then comment lines up to >= 50 MiB, streamed in 1 MiB writes
        chunks = -(-(HUGE_BODY_BYTES - len(body)) // len(_PAD_CHUNK))
        resp.content_length = len(body) + chunks * len(_PAD_CHUNK)
        await resp.prepare(request)
        with contextlib.suppress(ConnectionError):
            await resp.write(body)
            for _ in range(chunks):
                await resp.write(_PAD_CHUNK)
        return resp

    async def health(self, request: web.Request) -> web.Response:
        inst, now = self._get(request)
        if inst.loading(now) or inst.dead:
            return web.Response(status=503, headers=_HDRS)
        inst.advance(now)
        return web.Response(status=200, headers=_HDRS)

    async def models(self, request: web.Request) -> web.Response:
        inst, now = self._get(request)
        if inst.loading(now) or inst.dead:
            return web.Response(status=503, headers=_HDRS)
        inst.advance(now)
        t0 = time.perf_counter()
        if self._api_key is not None and request.headers.get("Authorization") != f"Bearer {self._api_key}":
            body = b'{"error":"Unauthorized"}'
            inst.record_http("/v1/models", "GET", 401, time.perf_counter() - t0, 0, len(body))
            return web.Response(status=401, body=body, headers=_JSON_HDRS)
        body = inst.models_body()
        inst.record_http("/v1/models", "GET", 200, time.perf_counter() - t0 + 0.0005, 0, len(body))
        return web.Response(body=body, headers=_JSON_HDRS)

    async def version(self, request: web.Request) -> web.Response:
        inst, now = self._get(request)
        if inst.loading(now):
            return web.Response(status=503, headers=_HDRS)
        return web.Response(body=inst.version_body(), headers=_JSON_HDRS)


def _make_app(
    resolve: Callable[[web.Request], SimulatedVllm], api_key: str | None, clock: Callable[[], float]
) -> web.Application:
    routes = _Routes(resolve, api_key, clock)
    app = web.Application()
    app.router.add_get("/metrics", routes.metrics)
    app.router.add_get("/metrics/", routes.metrics)
    app.router.add_get("/health", routes.health)
    app.router.add_get("/ping", routes.health)
    app.router.add_post("/ping", routes.health)
    app.router.add_get("/v1/models", routes.models)
    app.router.add_get("/version", routes.version)
    return app


def build_app(
    instances: SimulatedVllm | Callable[[], SimulatedVllm],
    *,
    api_key: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> web.Application:
    """An aiohttp application serving one simulated vLLM.

    Args:
        instances: the instance, or a zero-argument callable returning the instance to serve (looked up per request,
            so a test can swap in a "restarted" server).
        api_key: when set, ``/v1/models`` needs ``Authorization: Bearer <api_key>`` (401 JSON otherwise);
            ``/metrics``, ``/health``, ``/ping`` and ``/version`` stay open, as in vLLM.
        clock: monotonic seconds; drives loading and how far each request advances the simulation.
    """
    if isinstance(instances, SimulatedVllm):
        inst = instances
        inst.touch(clock())  # the server "starts" now: loading counts from here
        return _make_app(lambda _request: inst, api_key, clock)
    factory = instances
    return _make_app(lambda _request: factory(), api_key, clock)


class _SharedRunner(web.AppRunner):
    """One runner behind many ports; ``cleanup()`` may be called once per returned pair."""

    _cleaned = False

    async def cleanup(self) -> None:
        if self._cleaned:
            return
        self._cleaned = True
        await super().cleanup()


def _raise_fd_limit(wanted: int) -> None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Linux
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def serve(
    instances: list[SimulatedVllm],
    host: str = "127.0.0.1",
    base_port: int = 0,
    *,
    api_key: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> list[tuple[str, web.AppRunner]]:
    """Serve each instance on its own loopback port: one shared app and runner, one listening socket per instance.

    Args:
        instances: what to serve, in order.
        host: address to bind.
        base_port: 0 for free ports, else instance ``i`` listens on ``base_port + i``.
        api_key: as for :func:`build_app`.
        clock: as for :func:`build_app`.

    Returns:
        ``(base URL, runner)`` per instance.  All pairs share one runner, whose ``cleanup()`` is idempotent, so
        cleaning up every pair's runner (or just one) stops everything.
    """
    by_port: dict[int, SimulatedVllm] = {}
    app = _make_app(lambda request: by_port[_local_port(request)], api_key, clock)
    runner = _SharedRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
    _raise_fd_limit(4 * len(instances) + 256)
    await runner.setup()
    out: list[tuple[str, web.AppRunner]] = []
    try:
        for i, inst in enumerate(instances):
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, base_port + i if base_port else 0))
            except OSError:
                sock.close()
                raise
            sock.setblocking(False)
            port = sock.getsockname()[1]
            by_port[port] = inst
            inst.touch(clock())
            await web.SockSite(runner, sock).start()
            h = f"[{host}]" if ":" in host else host
            out.append((f"http://{h}:{port}", runner))
    except BaseException:
        await runner.cleanup()
        raise
    return out
