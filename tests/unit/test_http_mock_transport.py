"""shared.http: the resilient upstream client against httpx.MockTransport (breaker, cache, retries, parsing)."""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import pickle
import ssl
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from prometheus_client import CollectorRegistry

from inferwatch.shared.http import (
    BreakerPolicy,
    CircuitOpen,
    RetryPolicy,
    UpstreamClient,
    UpstreamMetrics,
    _retry_after,
)
from tests.support.http import MB, Sleeps, client, expect_error, requests, sample

# --- time control and helpers -----------------------------------------------------------------------


class Clock:
    """Injectable monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


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
        transport=transport,
        clock=clock,
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
        transport=transport,
        clock=clock,
        breaker=BreakerPolicy(failure_threshold=1, reset_after_s=5),
    )
    c._settle(False, False)  # one failure opens it (threshold 1)
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
    c._settle(False, False)
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
    c = client("http://upstream", metrics, transport=transport, breaker=BreakerPolicy(failure_threshold=2))
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
    async with client("http://upstream", metrics, transport=transport) as c:
        error = await expect_error(c.get("/x"))
    assert (error.outcome, error.status) == (outcome, status)
    assert len(seen) == (3 if status in RetryPolicy().retry_on_status else 1)


async def test_retry_after_http_date(metrics: UpstreamMetrics) -> None:
    later = email.utils.formatdate(time.time() + 3600, usegmt=True)
    transport, seen = mock(lambda _r: httpx.Response(429, headers={"Retry-After": later}))
    sleeps = Sleeps()
    async with client("http://upstream", metrics, transport=transport, sleep=sleeps) as c:
        error = await expect_error(c.get("/x"))
    assert error.outcome == "http_429"
    assert error.retry_after_s is not None
    assert 3590 < error.retry_after_s <= 3600
    assert (len(seen), sleeps.delays) == (1, [])


def test_retry_after_parsing() -> None:
    now = time.time()
    assert _retry_after(None, now) is None
    assert _retry_after(" 7 ", now) == 7.0
    assert _retry_after("-3", now) == 0.0
    assert _retry_after("soon", now) is None
    assert _retry_after("nan", now) is None
    assert _retry_after(email.utils.formatdate(now - 60, usegmt=True), now) == 0.0
    assert _retry_after(email.utils.formatdate(now + 90, usegmt=True), now) == pytest.approx(90, abs=1.5)


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
        "http://upstream", metrics, transport=transport, clock=clock, cache_max_entries=2, retry=RetryPolicy(attempts=1)
    )
    first = await c.get("/models", endpoint="/models", params={"a": 1, "b": 2}, cache_ttl_s=60)
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
    async with client("http://upstream", metrics, transport=transport, max_body_bytes=MB) as c:
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
    async with client("http://upstream", metrics, transport=transport) as c:
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
    async with client("http://upstream", metrics, transport=transport, max_body_bytes=1024) as c:
        assert len((await c.get("/exact")).body) == 1024
        assert (await expect_error(c.get("/corrupt"))).outcome == "invalid_body"
    async with client("http://upstream", metrics, transport=transport, max_body_bytes=1023) as c:
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
        "http://upstream", metrics, transport=transport, follow_redirects=True, headers={"x-api-key": "k"}
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
    async with client("http://upstream", metrics, transport=transport) as c:
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
    first, second = UpstreamMetrics(registry), UpstreamMetrics(registry)  # no duplicate-registration error
    transport, _ = mock(lambda _r: httpx.Response(503))
    a = UpstreamClient(
        "vllm",
        "http://a:8000",
        metrics=first,
        transport=transport,
        retry=RetryPolicy(attempts=1),
        breaker=BreakerPolicy(failure_threshold=1),
    )
    b = UpstreamClient("vllm", "http://user:pw@b:8000/prefix", metrics=second, transport=transport)
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
        transport=transport,
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
