"""Every service's HTTP endpoints behind basic/bearer auth and TLS (issue #8), on a real service on loopback."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from inferwatch.shared.service import ServiceApp, ServiceContext, ServiceSpec, run_service
from inferwatch.shared.settings import Env
from tests.support import free_port, running_service, wait_until
from tests.support.auth import PASSWORD, TOKEN, USER, self_signed

PROTECTED = ("/metrics", "/", "/api/status")


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_aggregator_endpoints_need_basic_or_bearer_credentials(nats_url: str, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    env = {
        "NATS_URL": nats_url,
        "INFERWATCH_HTTP_AUTH_BEARER_TOKEN_FILE": str(token_file),
        "INFERWATCH_HTTP_AUTH_BASIC_USER": USER,
        "INFERWATCH_HTTP_AUTH_BASIC_PASSWORD": PASSWORD,
    }
    async with (
        running_service("aggregator", env) as agg,
        httpx.AsyncClient(timeout=5) as client,
    ):
        for probe in ("/healthz", "/readyz"):  # open by default: kubelet probes send no credentials
            assert (await client.get(agg.url + probe)).status_code == 200
        for path in PROTECTED:
            url = agg.url + path
            anonymous = await client.get(url)
            assert anonymous.status_code == 401, path
            assert anonymous.headers.get_list("WWW-Authenticate") == [
                'Basic realm="inferwatch", charset="UTF-8"',
                'Bearer realm="inferwatch"',
            ]
            for wrong in (
                bearer("nope"),
                bearer(TOKEN + "x"),
                basic(USER, "nope"),
                basic("root", PASSWORD),
                {"Authorization": "Basic !!!not-base64"},
                {"Authorization": TOKEN},
            ):
                assert (await client.get(url, headers=wrong)).status_code == 401, (path, wrong)
            assert (await client.get(url, headers=basic(USER, PASSWORD))).status_code == 200, path
            assert (await client.get(url, headers=bearer(TOKEN))).status_code == 200, path
        body = (await client.get(agg.url + "/metrics", headers=bearer(TOKEN))).text
        assert "# HELP inferwatch_" in body  # the real exposition, not an error page
        assert TOKEN not in body
        assert PASSWORD not in body


class BareConfig:
    """No settings: the bare service only serves the common endpoints."""

    ENV_PREFIX: ClassVar[str] = "INFERWATCH_AUTH_TEST_"

    @classmethod
    def from_env(cls, env: Env) -> BareConfig:
        return cls()


def build(ctx: ServiceContext, config: BareConfig) -> ServiceApp:
    """A service that does nothing until stopped (this module is its ``ServiceSpec.app``)."""
    return ServiceApp(run=ctx.stop.wait)


@contextlib.asynccontextmanager
async def serve(env: Mapping[str, str], probe: httpx.AsyncClient, scheme: str = "http") -> AsyncIterator[str]:
    """A bare service (``build`` above) on a free port; its base URL once ``/healthz`` answers ``probe``."""
    port = free_port()
    bare = ServiceSpec("auth-test", port, BareConfig, __name__, "does nothing")
    task = asyncio.create_task(run_service(bare, env=Env(dict(env))))
    url = f"{scheme}://127.0.0.1:{port}"

    async def answers() -> bool:
        if task.done():
            task.result()  # surface a startup failure instead of timing out
        try:
            return (await probe.get(url + "/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        await wait_until(answers, timeout=10, what="service /healthz")
        yield url
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_probes_protected_when_asked(nats_url: str) -> None:
    env = {"NATS_URL": nats_url, "INFERWATCH_HTTP_AUTH_BEARER_TOKEN": TOKEN, "INFERWATCH_HTTP_AUTH_PROBES": "true"}
    async with httpx.AsyncClient(timeout=5, headers=bearer(TOKEN)) as authed, serve(env, authed) as url:
        async with httpx.AsyncClient(timeout=5) as anonymous:
            for path in ("/healthz", "/readyz", "/metrics"):
                response = await anonymous.get(url + path)
                assert response.status_code == 401, path
                assert response.headers["WWW-Authenticate"] == 'Bearer realm="inferwatch"'
        assert (await authed.get(url + "/metrics")).status_code == 200


async def test_tls_verifies_with_the_ca_and_fails_without(nats_url: str, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    env = {
        "NATS_URL": nats_url,
        "INFERWATCH_HTTP_TLS_CERT_FILE": str(cert),
        "INFERWATCH_HTTP_TLS_KEY_FILE": str(key),
        "INFERWATCH_HTTP_AUTH_BASIC_USER": USER,
        "INFERWATCH_HTTP_AUTH_BASIC_PASSWORD": PASSWORD,
    }
    trusted = ssl.create_default_context(cafile=str(cert))
    async with (
        httpx.AsyncClient(timeout=5, verify=trusted) as client,
        serve(env, client, scheme="https") as url,
    ):
        assert (await client.get(url + "/metrics")).status_code == 401
        assert (await client.get(url + "/metrics", headers=basic(USER, PASSWORD))).status_code == 200
        async with httpx.AsyncClient(timeout=5) as system_cas:  # the system trust store does not know our CA
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await system_cas.get(url + "/healthz")
