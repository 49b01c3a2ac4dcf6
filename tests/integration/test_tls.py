"""One TLS policy for every client: a self-signed CA on loopback, trusted by file or by directory, or not at all."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from inferwatch.services.epp_scraper.app import EppScraper
from inferwatch.services.epp_scraper.config import EppScraperConfig
from inferwatch.shared.http import Outcome, UpstreamClient, UpstreamError, UpstreamMetrics
from inferwatch.shared.tls import TlsPolicy
from inferwatch.simulators.epp import EppSimulator
from tests.support import require_tool
from tests.support.auth import self_signed


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


@pytest.fixture
def ca_dir(tmp_path: Path, certificate: tuple[Path, Path]) -> Path:
    """A CA directory as OpenSSL's ``CApath`` reads it: the certificate under its subject hash."""
    openssl = require_tool("openssl")
    subject_hash = subprocess.run(
        [openssl, "x509", "-hash", "-noout", "-in", str(certificate[0])],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    directory = tmp_path / "cas"
    directory.mkdir()
    (directory / f"{subject_hash}.0").write_bytes(certificate[0].read_bytes())
    return directory


async def _serve_tls(handler: web.Handler, context: ssl.SSLContext) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def epp_over_tls(certificate: tuple[Path, Path]) -> AsyncIterator[str]:
    """An EPP /metrics (no token) over TLS with the self-signed certificate."""
    sim = EppSimulator()

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=sim.render(), content_type="text/plain")

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    async for url in _serve_tls(metrics, context):
        yield url


def test_from_ca_path_tells_a_bundle_from_a_directory(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    assert TlsPolicy.from_ca_path(str(bundle)) == TlsPolicy(ca_file=str(bundle))
    assert TlsPolicy.from_ca_path(str(tmp_path), insecure=True) == TlsPolicy(ca_dir=str(tmp_path), insecure=True)
    assert TlsPolicy.from_ca_path("") == TlsPolicy()
    default = TlsPolicy().context()
    assert (default.verify_mode, default.check_hostname) == (ssl.CERT_REQUIRED, True)  # verification by default
    assert TlsPolicy().context() is default  # built once, shared by every client
    insecure = TlsPolicy(insecure=True).context()
    assert (insecure.verify_mode, insecure.check_hostname) == (ssl.CERT_NONE, False)


@pytest.mark.parametrize("trust", ["file", "directory", "insecure", "none"])
async def test_client_trusts_exactly_what_the_policy_says(
    trust: str, epp_over_tls: str, certificate: tuple[Path, Path], ca_dir: Path
) -> None:
    policies = {
        "file": TlsPolicy(ca_file=str(certificate[0])),
        "directory": TlsPolicy(ca_dir=str(ca_dir)),
        "insecure": TlsPolicy(insecure=True),
        "none": TlsPolicy(),
    }
    metrics = UpstreamMetrics.of(CollectorRegistry())
    async with UpstreamClient("epp", epp_over_tls, metrics=metrics, tls=policies[trust]) as client:
        if trust == "none":
            with pytest.raises(UpstreamError) as failed:
                await client.get("/metrics")
            assert failed.value.outcome is Outcome.TLS_ERROR
        else:
            assert b"llm_d_epp" in (await client.get("/metrics")).body


async def test_client_certificate_is_presented_for_mutual_tls(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text="up 1\n")

    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(cert))
    server.load_cert_chain(str(cert), str(key))
    server.verify_mode = ssl.CERT_REQUIRED
    registry_metrics = UpstreamMetrics.of(CollectorRegistry())
    async for url in _serve_tls(metrics, server):
        mutual = TlsPolicy(ca_file=str(cert), cert_file=str(cert), key_file=str(key))
        async with UpstreamClient("test", url, metrics=registry_metrics, tls=mutual) as client:
            assert (await client.get("/metrics")).body == b"up 1\n"
        anonymous = TlsPolicy(ca_file=str(cert))
        async with UpstreamClient("test", url, metrics=registry_metrics, tls=anonymous) as client:
            with pytest.raises(UpstreamError):
                await client.get("/metrics")


@pytest.mark.parametrize("by", ["file", "directory"])
async def test_epp_targets_take_a_ca_file_or_a_ca_directory(
    by: str, epp_over_tls: str, certificate: tuple[Path, Path], ca_dir: Path
) -> None:
    ca = str(certificate[0]) if by == "file" else str(ca_dir)
    ctx = SimpleNamespace(registry=CollectorRegistry(), instance="epp-scraper@test")
    scraper = EppScraper(EppScraperConfig(targets=(epp_over_tls,), tls_ca_file=ca), ctx)  # type: ignore[arg-type]
    try:
        snapshot = await scraper.scrape(epp_over_tls)
    finally:
        await scraper.aclose()
    assert (snapshot.up, snapshot.error, snapshot.naming) == (True, "", "llm_d_epp")


def test_root_certificates_for_grpc_come_from_the_file_or_the_directory(
    certificate: tuple[Path, Path], ca_dir: Path
) -> None:
    pem = certificate[0].read_bytes()
    assert TlsPolicy(ca_file=str(certificate[0])).root_certificates() == pem
    assert TlsPolicy(ca_dir=str(ca_dir)).root_certificates() == pem
    assert TlsPolicy().root_certificates() is None
