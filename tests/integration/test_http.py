"""shared.http: the resilient upstream client against a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import gzip
import logging
import shutil
import ssl
import subprocess
import time
import traceback
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from inferwatch.shared.http import (
    RetryPolicy,
    UpstreamError,
    UpstreamMetrics,
)
from tests.support.http import MB, Sleeps, client, expect_error, requests, sample

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
    async with client(upstream.url, metrics, sleep=sleeps, retry=retry) as c:
        assert await c.get_json("/flaky") == {"ok": True}
    assert upstream.hits["/flaky"] == 2
    assert len(sleeps.delays) == 1
    assert 0.1 <= sleeps.delays[0] <= 0.2
    assert requests(registry, "/flaky", "http_5xx") == 1
    assert requests(registry, "/flaky", "ok") == 1
    assert sample(registry, "inferwatch_upstream_retries_total", api="test", endpoint="/flaky") == 1


async def test_429_retry_after_within_max_delay_is_honoured(upstream: Upstream, metrics: UpstreamMetrics) -> None:
    sleeps = Sleeps()
    async with client(upstream.url, metrics, sleep=sleeps) as c:
        assert await c.get_json("/limited", params={"after": "2"}) == {"ok": True}
    assert sleeps.delays == [2.0]
    assert upstream.hits["/limited"] == 2


async def test_429_retry_after_beyond_max_delay_gives_up_at_once(
    upstream: Upstream,
    metrics: UpstreamMetrics,
    registry: CollectorRegistry,
) -> None:
    sleeps = Sleeps()
    async with client(upstream.url, metrics, sleep=sleeps) as c:
        error = await expect_error(c.get("/limited", params={"after": "120"}))
    assert (error.outcome, error.status, error.retry_after_s, error.attempts) == ("http_429", 429, 120.0, 1)
    assert sleeps.delays == []
    assert upstream.hits["/limited"] == 1
    assert requests(registry, "/limited", "http_429") == 1


async def test_401_fails_at_once(upstream: Upstream, metrics: UpstreamMetrics, registry: CollectorRegistry) -> None:
    sleeps = Sleeps()
    async with client(upstream.url, metrics, sleep=sleeps) as c:
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
    async with client(upstream.url, metrics, timeout_s=0.3, retry=RetryPolicy(attempts=2)) as c:
        started = time.monotonic()
        error = await expect_error(c.get("/hang"))
        elapsed = time.monotonic() - started
    assert error.outcome == "timeout"
    assert error.attempts == 2
    assert 0.55 <= elapsed < 1.2
    assert requests(registry, "/hang", "timeout") == 2


async def test_dribbled_body_is_cut_at_the_deadline(upstream: Upstream, metrics: UpstreamMetrics) -> None:
    async with client(upstream.url, metrics, timeout_s=0.5, retry=RetryPolicy(attempts=1)) as c:
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
    async with client(upstream.url, metrics, max_body_bytes=cap) as c:
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
    async with client(upstream.url, metrics, max_body_bytes=MB) as c:
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
    async with client(url, metrics, sleep=sleeps) as c:
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
    """A self-signed certificate for 127.0.0.1 (cryptography if importable, else the openssl CLI)."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        _cert_with_cryptography(cert, key)
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("needs the cryptography package or the openssl CLI")
        subprocess.run(
            [
                openssl,
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
    return cert, key


def _cert_with_cryptography(cert: Path, key: Path) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


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
    async with client(tls_upstream.url, metrics, sleep=sleeps) as c:
        error = await expect_error(c.get("/ok"))
    assert error.outcome == "tls_error"
    assert error.attempts == 1  # a certificate does not fix itself: not retried
    assert isinstance(error.__cause__, httpx.ConnectError)
    assert requests(registry, "/ok", "tls_error") == 1
    async with client(tls_upstream.url, metrics, verify=str(self_signed[0])) as c:
        assert (await c.get_json("/ok"))["ok"] is True
    async with client(tls_upstream.url, metrics, verify=False) as c:
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
    assert "HTTP Request: GET http://127.0.0.1" in caplog.text  # httpx's own INFO line, query redacted
    assert "/ok?… " in caplog.text
    assert "http_401" in caplog.text  # the failure was logged, just without secrets
    for error in errors:
        rendered = str(error) + repr(error) + "".join(traceback.format_exception(error))
        assert "s3cr3t" not in rendered
    assert b"s3cr3t" not in generate_latest(registry)
