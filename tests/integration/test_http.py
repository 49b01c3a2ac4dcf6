"""shared.http: the resilient upstream client, against a real aiohttp server on loopback and httpx.MockTransport.

The MockTransport half needs no server, but shares this module's helpers with the loopback half."""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import logging
import pickle
import ssl
import time
import traceback
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from inferwatch.shared.http import (
    BreakerPolicy,
    CachePolicy,
    CallPolicy,
    CircuitOpen,
    ClientSeams,
    Limits,
    RetryPolicy,
    UpstreamClient,
    UpstreamError,
    UpstreamMetrics,
)
from inferwatch.shared.http.body import retry_after_s
from inferwatch.shared.http.breaker import Admission
from inferwatch.shared.tls import TlsPolicy
from tests.support.auth import self_signed as make_self_signed

MB = 1024 * 1024
CHUNK = b"x" * 65536


# --- loopback server --------------------------------------------------------------------------------


@dataclass
class Upstream:
    """A running loopback server and what it saw."""

    url: str
    hits: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)


def _app(state: Upstream) -> web.Application:
    def hit(request: web.Request) -> int:
        state.hits[request.path] = state.hits.get(request.path, 0) + 1
        return state.hits[request.path]

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "n": hit(request), "q": dict(request.query)})

    async def flaky(request: web.Request) -> web.Response:
        if hit(request) == 1:
            return web.Response(status=500, text="boom")
        return web.json_response({"ok": True})

    async def limited(request: web.Request) -> web.Response:
        if hit(request) == 1:
            return web.Response(status=429, headers={"Retry-After": request.query.get("after", "1")})
        return web.json_response({"ok": True})

    async def unauthorized(request: web.Request) -> web.Response:
        hit(request)
        return web.Response(status=401, text="no")

    async def hang(request: web.Request) -> web.Response:
        hit(request)
        await asyncio.sleep(30)
        return web.Response(text="late")

    async def dribble(request: web.Request) -> web.StreamResponse:
        hit(request)
        response = web.StreamResponse()
        await response.prepare(request)
        while True:
            await response.write(b"x")
            await asyncio.sleep(0.2)

    async def big(request: web.Request) -> web.StreamResponse:
        hit(request)
        response = web.StreamResponse()
        if request.query.get("declared"):
            response.content_length = 50 * MB
        await response.prepare(request)
        state.sent[request.path] = 0
        for _ in range(50 * MB // len(CHUNK)):
            await response.write(CHUNK)
            state.sent[request.path] += len(CHUNK)
        await response.write_eof()
        return response

    async def invalid(request: web.Request) -> web.Response:
        hit(request)
        return web.Response(text="not json {", content_type="application/json")

    async def redirect(request: web.Request) -> web.Response:
        hit(request)
        raise web.HTTPFound("/ok")

    async def gzipped(request: web.Request) -> web.Response:
        hit(request)
        body = gzip.compress(b'{"zipped": true}')
        return web.Response(body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    app = web.Application()
    for path, handler in {
        "/ok": ok,
        "/flaky": flaky,
        "/limited": limited,
        "/auth": unauthorized,
        "/hang": hang,
        "/dribble": dribble,
        "/big": big,
        "/invalid": invalid,
        "/redirect": redirect,
        "/gzip": gzipped,
    }.items():
        app.router.add_get(path, handler)
    return app


async def _serve(state: Upstream, ssl_context: ssl.SSLContext | None = None) -> web.AppRunner:
    runner = web.AppRunner(_app(state), handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    return runner


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    state = Upstream(url="")
    runner = await _serve(state)
    try:
        yield state
    finally:
        await runner.cleanup()


# --- time control and helpers -----------------------------------------------------------------------


class Sleeps:
    """Injectable sleep that records delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


class Clock:
    """Injectable monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def requests(registry: CollectorRegistry, endpoint: str, outcome: str, api: str = "test") -> float:
    value = registry.get_sample_value(
        "inferwatch_upstream_requests_total", {"api": api, "endpoint": endpoint, "outcome": outcome}
    )
    return value or 0.0


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


TEST_LIMITS, DEFAULT_RETRY, DEFAULT_BREAKER, DEFAULT_CACHE = (
    Limits(timeout_s=2.0),
    RetryPolicy(),
    BreakerPolicy(),
    CachePolicy(),
)


def client(
    url: str,
    metrics: UpstreamMetrics,
    *,
    limits: Limits = TEST_LIMITS,
    retry: RetryPolicy = DEFAULT_RETRY,
    breaker: BreakerPolicy = DEFAULT_BREAKER,
    cache: CachePolicy = DEFAULT_CACHE,
    follow_redirects: bool = False,
    seams: ClientSeams | None = None,
    **options: Any,
) -> UpstreamClient:
    """A test client: 2 s deadline, recorded (not real) backoff sleeps unless ``seams`` says otherwise."""
    policy = CallPolicy(limits=limits, retry=retry, breaker=breaker, cache=cache, follow_redirects=follow_redirects)
    return UpstreamClient(
        "test", url, metrics=metrics, policy=policy, seams=seams or ClientSeams(sleep=Sleeps()), **options
    )


Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


def mock(handler: Handler) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A MockTransport recording every request it is sent."""
    seen: list[httpx.Request] = []

    async def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        result = handler(request)
        return await result if not isinstance(result, httpx.Response) else result

    return httpx.MockTransport(record), seen


async def stream(data: bytes, size: int = 16384) -> AsyncIterator[bytes]:
    """Response content that is really streamed (bytes content is pre-read by httpx)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def expect_error(call: Awaitable[Any]) -> UpstreamError:
    with pytest.raises(UpstreamError) as info:
        await call
    return info.value


# --- real HTTP on loopback ----------------------------------------------------------------------------


async def test_ok_json_and_metrics(upstream: Upstream, metrics: UpstreamMetrics, registry: CollectorRegistry) -> None:
    async with client(upstream.url, metrics) as c:
        assert await c.get_json("/ok", endpoint="/ok", params={"b": 2, "a": "x"}) == {
            "ok": True,
            "n": 1,
            "q": {"a": "x", "b": "2"},
        }
        response = await c.get("/ok")
    assert response.status == 200
    assert response.headers["content-type"].startswith("application/json")
    assert all(k == k.lower() for k in response.headers)
    assert response.from_cache is False
    assert response.elapsed_s > 0
    assert requests(registry, "/ok", "ok") == 2
    assert sample(registry, "inferwatch_upstream_request_duration_seconds_count", api="test", endpoint="/ok") == 2
    assert sample(registry, "inferwatch_upstream_retries_total", api="test", endpoint="/ok") == 0
    assert registry.get_sample_value("inferwatch_upstream_circuit_state", {"api": "test"}) == 0


async def test_gzip_body_is_decoded(upstream: Upstream, metrics: UpstreamMetrics) -> None:
    async with client(upstream.url, metrics) as c:
        assert await c.get_json("/gzip") == {"zipped": True}


async def test_500_then_ok_is_retried_with_backoff(
    upstream: Upstream,
    metrics: UpstreamMetrics,
    registry: CollectorRegistry,
) -> None:
    sleeps = Sleeps()
    retry = RetryPolicy(attempts=3, base_delay_s=0.2, jitter=0.5)
    async with client(upstream.url, metrics, seams=ClientSeams(sleep=sleeps), retry=retry) as c:
        assert await c.get_json("/flaky") == {"ok": True}
    assert upstream.hits["/flaky"] == 2
    assert len(sleeps.delays) == 1
    assert 0.1 <= sleeps.delays[0] <= 0.2
    assert requests(registry, "/flaky", "http_5xx") == 1
    assert requests(registry, "/flaky", "ok") == 1
    assert sample(registry, "inferwatch_upstream_retries_total", api="test", endpoint="/flaky") == 1


async def test_429_retry_after_within_max_delay_is_honoured(upstream: Upstream, metrics: UpstreamMetrics) -> None:
    sleeps = Sleeps()
    async with client(upstream.url, metrics, seams=ClientSeams(sleep=sleeps)) as c:
        assert await c.get_json("/limited", params={"after": "2"}) == {"ok": True}
    assert sleeps.delays == [2.0]
    assert upstream.hits["/limited"] == 2


async def test_429_retry_after_beyond_max_delay_gives_up_at_once(
    upstream: Upstream,
    metrics: UpstreamMetrics,
    registry: CollectorRegistry,
) -> None:
    sleeps = Sleeps()
    async with client(upstream.url, metrics, seams=ClientSeams(sleep=sleeps)) as c:
        error = await expect_error(c.get("/limited", params={"after": "120"}))
    assert (error.outcome, error.status, error.retry_after_s, error.attempts) == ("http_429", 429, 120.0, 1)
    assert sleeps.delays == []
    assert upstream.hits["/limited"] == 1
    assert requests(registry, "/limited", "http_429") == 1


async def test_401_fails_at_once(upstream: Upstream, metrics: UpstreamMetrics, registry: CollectorRegistry) -> None:
    sleeps = Sleeps()
    async with client(upstream.url, metrics, seams=ClientSeams(sleep=sleeps)) as c:
        error = await expect_error(c.get("/auth"))
    assert (error.outcome, error.status) == ("http_401", 401)
    assert upstream.hits["/auth"] == 1
    assert sleeps.delays == []
    assert sample(registry, "inferwatch_upstream_retries_total", api="test", endpoint="/auth") == 0


async def test_hanging_server_times_out_every_attempt(
    upstream: Upstream,
    metrics: UpstreamMetrics,
    registry: CollectorRegistry,
) -> None:
    async with client(upstream.url, metrics, limits=Limits(timeout_s=0.3), retry=RetryPolicy(attempts=2)) as c:
        started = time.monotonic()
        error = await expect_error(c.get("/hang"))
        elapsed = time.monotonic() - started
    assert error.outcome == "timeout"
    assert error.attempts == 2
    assert 0.55 <= elapsed < 1.2
    assert requests(registry, "/hang", "timeout") == 2


async def test_dribbled_body_is_cut_at_the_deadline(upstream: Upstream, metrics: UpstreamMetrics) -> None:
    async with client(upstream.url, metrics, limits=Limits(timeout_s=0.5), retry=RetryPolicy(attempts=1)) as c:
        started = time.monotonic()
        error = await expect_error(c.get("/dribble"))
        elapsed = time.monotonic() - started
    assert error.outcome == "timeout"
    assert 0.45 <= elapsed < 1.0


async def test_huge_streamed_body_is_aborted_early_with_bounded_memory(
    upstream: Upstream,
    metrics: UpstreamMetrics,
    registry: CollectorRegistry,
) -> None:
    cap = 1 * MB
    async with client(upstream.url, metrics, limits=Limits(timeout_s=2.0, max_body_bytes=cap)) as c:
        tracemalloc.start()
        try:
            error = await expect_error(c.get("/big"))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert (error.outcome, error.status) == ("too_large", 200)
    assert peak < cap * 3 + MB, f"peak {peak} bytes"
    await asyncio.sleep(0.05)
    assert upstream.sent["/big"] < 25 * MB  # the client hung up long before the 50 MB were written
    assert requests(registry, "/big", "too_large") == 1
    assert upstream.hits["/big"] == 1  # not retried


async def test_declared_content_length_over_cap_is_rejected_before_reading(
    upstream: Upstream,
    metrics: UpstreamMetrics,
) -> None:
    async with client(upstream.url, metrics, limits=Limits(timeout_s=2.0, max_body_bytes=MB)) as c:
        error = await expect_error(c.get("/big", params={"declared": "1"}))
    assert error.outcome == "too_large"
    await asyncio.sleep(0.05)
    assert upstream.sent.get("/big", 0) < 25 * MB


async def test_invalid_json_is_invalid_body_and_not_cached(
    upstream: Upstream,
    metrics: UpstreamMetrics,
    registry: CollectorRegistry,
) -> None:
    async with client(upstream.url, metrics) as c:
        for _ in range(2):
            error = await expect_error(c.get_json("/invalid", cache_ttl_s=60))
            assert (error.outcome, error.status) == ("invalid_body", 200)
        assert c.circuit_state() == "closed"
    assert upstream.hits["/invalid"] == 2
    assert requests(registry, "/invalid", "invalid_body") == 2
    assert requests(registry, "/invalid", "ok") == 0


async def test_connection_refused_is_connect_error_after_retries(
    metrics: UpstreamMetrics,
    registry: CollectorRegistry,
) -> None:
    state = Upstream(url="")
    runner = await _serve(state)
    url = state.url
    await runner.cleanup()  # nothing listens there any more
    sleeps = Sleeps()
    async with client(url, metrics, seams=ClientSeams(sleep=sleeps)) as c:
        error = await expect_error(c.get("/ok"))
    assert (error.outcome, error.status, error.attempts) == ("connect_error", None, 3)
    assert len(sleeps.delays) == 2
    assert sleeps.delays[1] > sleeps.delays[0] * 1.2  # exponential
    assert requests(registry, "/ok", "connect_error") == 3


async def test_redirects(upstream: Upstream, metrics: UpstreamMetrics) -> None:
    async with client(upstream.url, metrics) as c:
        error = await expect_error(c.get("/redirect"))
    assert (error.outcome, error.status) == ("http_3xx", 302)
    async with client(upstream.url, metrics, follow_redirects=True) as c:
        assert (await c.get_json("/redirect"))["ok"] is True


# --- TLS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, shared by this module's TLS tests."""
    return make_self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def tls_upstream(self_signed: tuple[Path, Path]) -> AsyncIterator[Upstream]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(self_signed[0]), str(self_signed[1]))
    state = Upstream(url="")
    runner = await _serve(state, context)
    try:
        yield state
    finally:
        await runner.cleanup()


async def test_tls_is_verified_by_default(
    tls_upstream: Upstream,
    self_signed: tuple[Path, Path],
    metrics: UpstreamMetrics,
    registry: CollectorRegistry,
) -> None:
    sleeps = Sleeps()
    async with client(tls_upstream.url, metrics, seams=ClientSeams(sleep=sleeps)) as c:
        error = await expect_error(c.get("/ok"))
    assert error.outcome == "tls_error"
    assert error.attempts == 1  # a certificate does not fix itself: not retried
    assert isinstance(error.__cause__, aiohttp.ClientConnectorCertificateError)  # the real (aiohttp) wire
    assert requests(registry, "/ok", "tls_error") == 1
    async with client(tls_upstream.url, metrics, tls=TlsPolicy(ca_file=str(self_signed[0]))) as c:
        assert (await c.get_json("/ok"))["ok"] is True
    async with client(tls_upstream.url, metrics, tls=TlsPolicy(insecure=True)) as c:
        assert (await c.get_json("/ok"))["ok"] is True


# --- secrets -----------------------------------------------------------------------------------------


async def test_secrets_never_leak(
    upstream: Upstream,
    metrics: UpstreamMetrics,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "inferwatch.http"):
        caplog.set_level(logging.DEBUG, logger=name)
    marker = "s3cr3t-MARKER"
    headers = {
        "Authorization": f"Bearer {marker}-bearer",
        "x-api-key": f"{marker}-xkey",
        "x-litellm-api-key": f"{marker}-litellm",
    }
    errors: list[UpstreamError] = []
    state = Upstream(url="")
    closed = await _serve(state)
    dead_url = state.url
    await closed.cleanup()
    host = upstream.url.removeprefix("http://")
    cases: list[tuple[str, dict[str, Any], str]] = [
        (upstream.url, {"headers": headers, "auth": ("user", f"{marker}-basic")}, "/auth"),
        (f"http://user:{marker}-userinfo@{host}", {"headers": headers}, "/auth"),
        (dead_url, {"headers": headers, "auth": ("user", f"{marker}-basic")}, "/ok"),
        (upstream.url.replace("http://", "https://"), {"headers": headers}, "/ok"),  # TLS to a plain server
    ]
    for url, options, path in cases:
        async with client(url, metrics, **options) as c:
            errors.append(
                await expect_error(
                    c.get(path, params={"api_key": f"{marker}-query"}, headers={"x-api-key": f"{marker}-percall"})
                )
            )
            if path == "/auth":  # a successful call too: httpx logs its URL (query included) at INFO
                assert (await c.get_json("/ok", params={"key": f"{marker}-ok"}))["ok"] is True
    assert [e.outcome for e in errors[:3]] == ["http_401", "http_401", "connect_error"]
    assert errors[3].outcome in ("tls_error", "connect_error", "protocol_error", "read_error")
    assert upstream.hits["/auth"] == 2
    assert "s3cr3t" not in caplog.text
    assert "http_401" in caplog.text  # the failure was logged, just without secrets
    for error in errors:
        rendered = str(error) + repr(error) + "".join(traceback.format_exception(error))
        assert "s3cr3t" not in rendered
    assert b"s3cr3t" not in generate_latest(registry)


async def _raw_server(answer: bytes) -> tuple[asyncio.Server, str]:
    """A loopback server that sends ``answer`` to the first request on each connection, then closes it."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 2OO OK\r\ncontent-length: 2\r\n\r\nok",  # garbled status line
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nbroken header\r\n\r\nok",  # a header without a colon
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\ncut short",  # body shorter than declared
        b"",  # closed without answering
    ],
)
async def test_malformed_answers_are_protocol_errors_without_secrets(
    answer: bytes, metrics: UpstreamMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    server, url = await _raw_server(answer)
    try:
        async with client(url, metrics, retry=RetryPolicy(attempts=2, base_delay_s=0)) as c:
            error = await expect_error(c.get("/metrics", params={"api_key": "s3cr3t-query"}))
    finally:
        server.close()
        await server.wait_closed()
    assert error.outcome == "protocol_error"
    assert error.attempts == 2  # a broken answer may be a broken connection: retried
    rendered = str(error) + repr(error) + "".join(traceback.format_exception(error)) + caplog.text
    assert "s3cr3t" not in rendered


async def test_real_wire_keeps_one_connection_and_merges_prefix_and_query(metrics: UpstreamMetrics) -> None:
    seen: list[bytes] = []
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while head := await reader.readuntil(b"\r\n\r\n"):
            seen.append(head)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-a: 1\r\nX-A: 2\r\n\r\nok")
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with client(f"http://u:pw@127.0.0.1:{port}/prefix/", metrics) as c:
            first = await c.get("/metrics")
            await c.get("v1/models?x=1", params={"y": "2"})
    finally:
        server.close()
    assert first.body == b"ok"
    assert first.headers["x-a"] == "1, 2"
    assert connections == 1  # keep-alive
    assert seen[0].startswith(b"GET /prefix/metrics HTTP/1.1\r\n")
    assert seen[1].startswith(b"GET /prefix/v1/models?x=1&y=2 HTTP/1.1\r\n")
    assert b"authorization: basic dtpwdw==\r\n" in seen[0].lower()  # userinfo became basic auth
    assert b"u:pw@" not in seen[0]


async def test_redirect_to_a_location_that_is_no_url_is_invalid_url(metrics: UpstreamMetrics) -> None:
    server, url = await _raw_server(b"HTTP/1.1 302 Found\r\nlocation: http://[::1/x\r\ncontent-length: 0\r\n\r\n")
    try:
        async with client(url, metrics, follow_redirects=True) as c:
            error = await expect_error(c.get("/ok"))
    finally:
        server.close()
        await server.wait_closed()
    assert error.outcome == "invalid_url"
    assert error.status == 302


# --- MockTransport: breaker, cache, retries, parsing ---------------------------------------------------


async def test_circuit_breaker_opens_fails_fast_and_recovers(
    metrics: UpstreamMetrics,
    registry: CollectorRegistry,
) -> None:
    healthy = False

    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ok": True}) if healthy else httpx.Response(503)

    transport, seen = mock(handler)
    clock = Clock()
    c = client(
        "http://upstream",
        metrics,
        seams=ClientSeams(transport=transport, clock=clock),
        retry=RetryPolicy(attempts=2),
        breaker=BreakerPolicy(failure_threshold=3, reset_after_s=30),
    )

    def gauge() -> float | None:
        return registry.get_sample_value("inferwatch_upstream_circuit_state", {"api": "test"})

    for _ in range(3):
        assert (await expect_error(c.get("/m"))).outcome == "http_5xx"
    assert len(seen) == 6
    assert c.circuit_state() == "open"
    assert gauge() == 2

    clock.now += 10
    error = await expect_error(c.get("/m"))
    assert isinstance(error, CircuitOpen)
    assert (error.outcome, error.attempts, error.retry_after_s) == ("circuit_open", 0, 20.0)
    assert len(seen) == 6  # no network I/O
    assert requests(registry, "/m", "circuit_open") == 1

    clock.now += 20
    assert c.circuit_state() == "half_open"
    assert (await expect_error(c.get("/m"))).outcome == "http_5xx"  # the trial: one attempt, fails
    assert len(seen) == 7
    assert c.circuit_state() == "open"
    assert gauge() == 2

    clock.now += 30
    healthy = True
    assert (await c.get_json("/m")) == {"ok": True}
    assert c.circuit_state() == "closed"
    assert gauge() == 0
    await c.aclose()


async def test_half_open_lets_exactly_one_trial_through(metrics: UpstreamMetrics, registry: CollectorRegistry) -> None:
    release = asyncio.Event()

    async def handler(_request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, json=1)

    transport, seen = mock(handler)
    clock = Clock()
    c = client(
        "http://upstream",
        metrics,
        seams=ClientSeams(transport=transport, clock=clock),
        breaker=BreakerPolicy(failure_threshold=1, reset_after_s=5),
    )
    c._breaker.settle(False, Admission.CALL)  # one failure opens it (threshold 1)
    assert c.circuit_state() == "open"
    clock.now += 5
    trial = asyncio.create_task(c.get_json("/m"))
    await asyncio.sleep(0.01)
    assert c.circuit_state() == "half_open"
    assert registry.get_sample_value("inferwatch_upstream_circuit_state", {"api": "test"}) == 1
    assert isinstance(await expect_error(c.get("/m")), CircuitOpen)
    release.set()
    assert await trial == 1
    assert len(seen) == 1
    assert c.circuit_state() == "closed"

    # a cancelled trial does not wedge the breaker in half-open
    release.clear()
    c._breaker.settle(False, Admission.CALL)
    clock.now += 5
    trial = asyncio.create_task(c.get_json("/m"))
    await asyncio.sleep(0.01)
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    release.set()
    assert await c.get_json("/m") == 1
    assert c.circuit_state() == "closed"
    await c.aclose()


async def test_client_errors_do_not_trip_the_breaker(metrics: UpstreamMetrics) -> None:
    transport, _ = mock(lambda _r: httpx.Response(404))
    c = client(
        "http://upstream", metrics, seams=ClientSeams(transport=transport), breaker=BreakerPolicy(failure_threshold=2)
    )
    for _ in range(5):
        assert (await expect_error(c.get("/version"))).outcome == "http_404"
    assert c.circuit_state() == "closed"
    await c.aclose()


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (301, "http_3xx"),
        (400, "http_4xx"),
        (401, "http_401"),
        (403, "http_403"),
        (404, "http_404"),
        (418, "http_4xx"),
        (429, "http_429"),
        (500, "http_5xx"),
        (501, "http_5xx"),
        (503, "http_5xx"),
    ],
)
async def test_status_outcomes(status: int, outcome: str, metrics: UpstreamMetrics) -> None:
    transport, seen = mock(lambda _r: httpx.Response(status, headers={"location": "/elsewhere"}))
    async with client("http://upstream", metrics, seams=ClientSeams(transport=transport)) as c:
        error = await expect_error(c.get("/x"))
    assert (error.outcome, error.status) == (outcome, status)
    assert len(seen) == (3 if status in RetryPolicy().retry_on_status else 1)


async def test_retry_after_http_date(metrics: UpstreamMetrics) -> None:
    later = email.utils.formatdate(time.time() + 3600, usegmt=True)
    transport, seen = mock(lambda _r: httpx.Response(429, headers={"Retry-After": later}))
    sleeps = Sleeps()
    async with client("http://upstream", metrics, seams=ClientSeams(transport=transport, sleep=sleeps)) as c:
        error = await expect_error(c.get("/x"))
    assert error.outcome == "http_429"
    assert error.retry_after_s is not None
    assert 3590 < error.retry_after_s <= 3600
    assert (len(seen), sleeps.delays) == (1, [])


def test_retry_after_parsing() -> None:
    now = time.time()
    assert retry_after_s(None, now) is None
    assert retry_after_s(" 7 ", now) == 7.0
    assert retry_after_s("-3", now) == 0.0
    assert retry_after_s("soon", now) is None
    assert retry_after_s("nan", now) is None
    assert retry_after_s(email.utils.formatdate(now - 60, usegmt=True), now) == 0.0
    assert retry_after_s(email.utils.formatdate(now + 90, usegmt=True), now) == pytest.approx(90, abs=1.5)


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=3.0, jitter=0.2)
    assert [policy.backoff_s(n, 0.0) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.backoff_s(1, 0.999999) == pytest.approx(0.4, rel=1e-4)
    assert RetryPolicy(jitter=0).backoff_s(2, 0.7) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=1.5)
    with pytest.raises(ValueError, match="failure_threshold"):
        BreakerPolicy(failure_threshold=0)


async def test_ttl_cache(metrics: UpstreamMetrics, registry: CollectorRegistry) -> None:
    fail = False

    def handler(request: httpx.Request) -> httpx.Response:
        if fail:
            return httpx.Response(500)
        return httpx.Response(200, json={"path": request.url.path, "q": dict(request.url.params)})

    transport, seen = mock(handler)
    clock = Clock()
    c = client(
        "http://upstream",
        metrics,
        seams=ClientSeams(transport=transport, clock=clock),
        cache=CachePolicy(max_entries=2),
        retry=RetryPolicy(attempts=1),
    )
    assert not c.cached("/models", params={"a": 1, "b": 2})
    first = await c.get("/models", endpoint="/models", params={"a": 1, "b": 2}, cache_ttl_s=60)
    assert c.cached("/models", params={"b": 2, "a": 1})
    assert not c.cached("/models")
    again = await c.get("/models", endpoint="/models", params={"b": 2, "a": 1}, cache_ttl_s=60)
    assert (first.from_cache, again.from_cache, again.body) == (False, True, first.body)
    assert await c.get_json("/models", endpoint="/models", params={"a": 1, "b": 2}, cache_ttl_s=60) == {
        "path": "/models",
        "q": {"a": "1", "b": "2"},
    }
    assert len(seen) == 1
    assert sample(registry, "inferwatch_upstream_cache_hits_total", api="test", endpoint="/models") == 2
    assert requests(registry, "/models", "ok") == 1

    await c.get("/models", params={"a": 1, "b": 2})  # no ttl: always fetched
    assert len(seen) == 2

    clock.now += 61  # expired
    assert not c.cached("/models", params={"a": 1, "b": 2})
    fail = True
    assert (await expect_error(c.get("/models", params={"a": 1, "b": 2}, cache_ttl_s=60))).outcome == "http_5xx"
    fail = False
    assert (await c.get("/models", params={"a": 1, "b": 2}, cache_ttl_s=60)).from_cache is False  # failure not cached
    assert len(seen) == 4

    # bounded: the oldest entry is evicted
    await c.get("/x", cache_ttl_s=60)
    await c.get("/y", cache_ttl_s=60)
    assert (await c.get("/y", cache_ttl_s=60)).from_cache
    assert (await c.get("/models", params={"a": 1, "b": 2}, cache_ttl_s=60)).from_cache is False
    assert len(c._cache) == 2
    await c.aclose()


async def test_gzip_bomb_is_capped_without_inflating_it(metrics: UpstreamMetrics) -> None:
    bomb = gzip.compress(b"\0" * (64 * MB), compresslevel=9)
    assert len(bomb) < MB
    transport, _ = mock(lambda _r: httpx.Response(200, content=stream(bomb), headers={"content-encoding": "gzip"}))
    async with client(
        "http://upstream", metrics, seams=ClientSeams(transport=transport), limits=Limits(max_body_bytes=MB)
    ) as c:
        tracemalloc.start()
        try:
            error = await expect_error(c.get("/bomb"))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert error.outcome == "too_large"
    assert peak < 4 * MB, f"peak {peak} bytes"


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS])
async def test_deflate_zlib_and_raw(wbits: int, metrics: UpstreamMetrics) -> None:
    compressor = zlib.compressobj(wbits=wbits)
    body = compressor.compress(b'{"deflated": 1}') + compressor.flush()
    transport, _ = mock(lambda _r: httpx.Response(200, content=stream(body), headers={"content-encoding": "deflate"}))
    async with client("http://upstream", metrics, seams=ClientSeams(transport=transport)) as c:
        assert await c.get_json("/d") == {"deflated": 1}


async def test_body_at_cap_passes_and_corrupt_encoding_is_invalid(metrics: UpstreamMetrics) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"a" * 256

    transport, _ = mock(
        lambda r: (
            httpx.Response(200, content=chunks())
            if r.url.path == "/exact"
            else httpx.Response(200, content=stream(b"garbage"), headers={"content-encoding": "gzip"})
        )
    )
    async with client(
        "http://upstream", metrics, seams=ClientSeams(transport=transport), limits=Limits(max_body_bytes=1024)
    ) as c:
        assert len((await c.get("/exact")).body) == 1024
        assert (await expect_error(c.get("/corrupt"))).outcome == "invalid_body"
    async with client(
        "http://upstream", metrics, seams=ClientSeams(transport=transport), limits=Limits(max_body_bytes=1023)
    ) as c:
        assert (await expect_error(c.get("/exact"))).outcome == "too_large"


async def test_cross_origin_redirect_is_refused(metrics: UpstreamMetrics) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "upstream" and request.url.path == "/start":
            return httpx.Response(302, headers={"location": "http://upstream/next"})
        if request.url.host == "upstream" and request.url.path == "/next":
            return httpx.Response(302, headers={"location": "https://upstream/final"})  # https upgrade: allowed
        if request.url.path == "/final":
            return httpx.Response(302, headers={"location": "http://evil.example/steal"})
        return httpx.Response(200, json="wrong")

    transport, seen = mock(handler)
    async with client(
        "http://upstream",
        metrics,
        seams=ClientSeams(transport=transport),
        follow_redirects=True,
        headers={"x-api-key": "k"},
    ) as c:
        error = await expect_error(c.get("/start"))
    assert (error.outcome, error.status) == ("http_3xx", 302)
    assert [str(r.url) for r in seen] == ["http://upstream/start", "http://upstream/next", "https://upstream/final"]


async def test_transport_failures_map_to_outcomes(metrics: UpstreamMetrics) -> None:
    failures: dict[str, Exception] = {
        "/connect": httpx.ConnectError("refused"),
        "/read": httpx.ReadError("reset"),
        "/protocol": httpx.RemoteProtocolError("server disconnected"),
        "/timeout": httpx.ReadTimeout("slow"),
        "/tls": httpx.ConnectError("handshake"),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        failure = failures[request.url.path]
        if request.url.path == "/tls":
            try:
                raise ssl.SSLCertVerificationError("certificate verify failed")
            except ssl.SSLError as cause:
                raise failure from cause
        raise failure

    transport, seen = mock(handler)
    async with client("http://upstream", metrics, seams=ClientSeams(transport=transport)) as c:
        outcomes = {path: (await expect_error(c.get(path))).outcome for path in failures}
    assert outcomes == {
        "/connect": "connect_error",
        "/read": "read_error",
        "/protocol": "protocol_error",
        "/timeout": "timeout",
        "/tls": "tls_error",
    }
    assert len(seen) == 4 * 3 + 1  # everything retried except TLS


async def test_metrics_are_shared_per_registry_and_gauge_shows_worst_client(registry: CollectorRegistry) -> None:
    first, second = UpstreamMetrics.of(registry), UpstreamMetrics.of(registry)  # one store per registry
    transport, _ = mock(lambda _r: httpx.Response(503))
    a = UpstreamClient(
        "vllm",
        "http://a:8000",
        metrics=first,
        policy=CallPolicy(retry=RetryPolicy(attempts=1), breaker=BreakerPolicy(failure_threshold=1)),
        seams=ClientSeams(transport=transport),
    )
    b = UpstreamClient("vllm", "http://user:pw@b:8000/prefix", metrics=second, seams=ClientSeams(transport=transport))
    await expect_error(a.get("/metrics"))
    assert registry.get_sample_value("inferwatch_upstream_circuit_state", {"api": "vllm"}) == 2
    assert first.circuit_states() == {"vllm http://a:8000": "open", "vllm http://b:8000": "closed"}
    await a.aclose()
    assert registry.get_sample_value("inferwatch_upstream_circuit_state", {"api": "vllm"}) == 0
    assert second.circuit_states() == {"vllm http://b:8000": "closed"}
    await b.aclose()


async def test_base_url_prefix_userinfo_and_headers_are_applied(metrics: UpstreamMetrics) -> None:
    transport, seen = mock(lambda _r: httpx.Response(200, json=[]))
    async with UpstreamClient(
        "litellm",
        "http://u:p@proxy:4000/api",
        metrics=metrics,
        seams=ClientSeams(transport=transport),
        headers={"x-litellm-api-key": "k1"},
    ) as c:
        await c.get_json("/v1/models", headers={"x-extra": "1"}, params={"limit": 5})
    request = seen[0]
    assert str(request.url) == "http://proxy:4000/api/v1/models?limit=5"
    assert request.headers["authorization"] == httpx.BasicAuth("u", "p")._auth_header
    assert (request.headers["x-litellm-api-key"], request.headers["x-extra"]) == ("k1", "1")


def test_errors_pickle_and_invalid_base_url(metrics: UpstreamMetrics) -> None:
    error = CircuitOpen("vllm", "/metrics", "circuit_open", retry_after_s=3.0, attempts=0)
    clone = pickle.loads(pickle.dumps(error))
    assert (type(clone), repr(clone), str(clone)) == (CircuitOpen, repr(error), str(error))
    with pytest.raises(ValueError, match="absolute http"):
        UpstreamClient("x", "ftp://host", metrics=metrics)
    with pytest.raises(ValueError, match="absolute http"):
        UpstreamClient("x", "/relative", metrics=metrics)
