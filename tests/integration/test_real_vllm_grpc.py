"""vllm-scraper against a real ``vllm serve --grpc`` (vLLM 0.32.0, CPU build, tiny local model).

What the real server settles: in ``--grpc`` mode vLLM serves gRPC on ``--port`` (no ``--grpc-port`` needed, no
HTTP at all: no ``/metrics``, ``/health`` or ``/v1/models`` anywhere), with the standard
``grpc.health.v1.Health`` service, which is what the scraper reads for a ``grpc://host:port`` target and what
docker-watcher announces for a ``--grpc`` container (``grpc://`` + its ``--port``, default 8000).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from inferwatch.services.vllm_scraper.app import grpc_health
from inferwatch.shared.tls import TlsPolicy
from scripts import real_vllm
from tests.support import free_port, get_text, running_service, wait_until
from tests.support.real_servers import ServerProcess, require_venv, series

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
PLAINTEXT = TlsPolicy.from_ca_path("", insecure=False)


@pytest.fixture(scope="module")
def grpc_vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, ServerProcess]]:
    """A real vLLM in ``--grpc`` mode on a free port: the port and the process (stopped afterwards)."""
    require_venv(real_vllm.VENV, "python -m scripts.real_vllm install")
    real_vllm.ensure_model()
    tmp = tmp_path_factory.mktemp("vllm-grpc")
    port = free_port()
    log = tmp / "vllm.log"
    server = ServerProcess(lambda: real_vllm.start(port, log, grpc=True, cache_dir=tmp / "cache"), log)
    server.start()
    try:
        yield port, server
    finally:
        server.stop()


def value(body: str, name: str, **labels: str) -> float | None:
    """The one sample ``name`` of the aggregator's exposition with ``labels``."""
    found = [v for n, ls, v in series(body, name) if n == name and all(ls.get(k) == x for k, x in labels.items())]
    assert len(found) <= 1, found
    return found[0] if found else None


async def test_grpc_mode_health_no_metrics_then_down(grpc_vllm: tuple[int, ServerProcess], nats_url: str) -> None:
    port, server = grpc_vllm
    url = f"grpc://127.0.0.1:{port}"

    async def serving() -> bool:
        assert server.proc is not None
        assert server.proc.poll() is None, server.tail()
        return (await grpc_health(url, 2.0, PLAINTEXT))[0]

    await wait_until(serving, timeout=240, interval=1.0, what="gRPC health SERVING")
    # the same port speaks only gRPC (HTTP/2): an HTTP/1.1 GET /metrics gets no exposition
    with pytest.raises(httpx.HTTPError):
        async with httpx.AsyncClient(timeout=3) as client:
            (await client.get(f"http://127.0.0.1:{port}/metrics")).raise_for_status()
    env = {
        "NATS_URL": nats_url,
        "INFERWATCH_VLLM_TARGETS": url,
        "INFERWATCH_VLLM_INTERVAL_S": "1",
        "INFERWATCH_VLLM_TIMEOUT_S": "2",
        "INFERWATCH_VLLM_SHARD": "0",
        "INFERWATCH_VLLM_SPREAD": "0",
    }
    async with running_service("aggregator", env) as agg, running_service("vllm-scraper", env):

        async def state(status: str, up: float) -> str | None:
            body = await get_text(agg.url + "/metrics")
            ok = value(body, "inferwatch_vllm_model_status", target=url, status=status) == 1.0
            return body if ok and value(body, "inferwatch_vllm_up", target=url) == up else None

        body = await wait_until(lambda: state("ready", 1.0), timeout=20, what="gRPC target ready")
        assert value(body, "inferwatch_vllm_health_ok", target=url) == 1.0
        # nothing but health over gRPC: no engine series, no model card, no version
        assert value(body, "inferwatch_vllm_info", target=url, version="", generation="", models="") == 1.0
        assert not [n for n, ls, _v in series(body, "inferwatch_vllm_requests_running") if ls.get("target") == url]
        await asyncio.to_thread(server.stop)
        body = await wait_until(lambda: state("error", 0.0), timeout=30, what="gRPC target down")
        assert value(body, "inferwatch_vllm_scrape_error_info", target=url, reason="grpc_unavailable") == 1.0
