"""The Dockerfile on a real Docker Engine: built offline on a locally made Debian base, run as the compose stack
runs it (non-root, read-only root filesystem), answering ``/readyz``. The container's lifecycle goes through
testcontainers, pointed at the private engine's socket."""

from __future__ import annotations

import time

import httpx
import pytest
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer

from tests.support import free_port
from tests.support.docker_engine import DockerEngine, build_inferwatch_image

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_image_builds_offline_and_runs_the_aggregator_read_only(docker_engine: DockerEngine, nats_url: str) -> None:
    engine = docker_engine
    started = time.monotonic()
    image = build_inferwatch_image(engine)
    size = int(engine.docker("image", "inspect", "--format", "{{.Size}}", image).stdout)
    print(f"\ninferwatch image: {size / 1e6:.0f} MB, made in {time.monotonic() - started:.0f} s")
    port = free_port()
    testcontainers_config.ryuk_disabled = True  # no Ryuk image offline; the engine fixture removes every container
    container = DockerContainer(
        image,
        docker_client_kw={"environment": {"DOCKER_HOST": engine.docker_host}},
        env={
            "NATS_URL": nats_url,
            "INFERWATCH_AGGREGATOR_HTTP_PORT": str(port),
            "INFERWATCH_AGGREGATOR_HTTP_HOST": "127.0.0.1",
        },
    ).with_kwargs(network_mode="host", read_only=True, security_opt=["no-new-privileges:true"])
    with container:
        cid = container.get_wrapped_container().id
        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline and status != 200:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code
            except httpx.HTTPError:
                time.sleep(0.3)
        assert status == 200, engine.docker("logs", cid, check=False).stderr[-2000:]
        inspect = container.get_wrapped_container().attrs
        assert (inspect["Config"]["User"], inspect["HostConfig"]["ReadonlyRootfs"]) == ("10001", True)
        exit_code, output = container.exec(["python3", "-c", "import os; print(os.getuid())"])
        assert (exit_code, output.strip()) == (0, b"10001")
        exit_code, _ = container.exec(["python3", "-c", "open('/opt/x', 'w')"])
        assert exit_code != 0  # read-only root filesystem
