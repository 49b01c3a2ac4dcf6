"""docker-compose.yml on a real Docker Engine with locally built images: docker-watcher, in its container, sees
vLLM-shaped containers through the read-only mounted socket; the aggregator, in its container, serves their
series; Prometheus scrapes the aggregator and a rule fires; ``down`` leaves nothing behind.

Runs Debian's ``docker-compose`` (1.29, the one that runs against this Engine 20.10 here; the 28.x CLI has
no compose plugin), exactly as README "Run with Docker Compose" says.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from tests.support import ROOT, free_port, require_tool
from tests.support.docker_engine import BUSYBOX_IMAGE, DockerEngine, make_compose_images

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SERVICES = ("nats", "aggregator", "docker-watcher", "vllm-scraper", "prometheus", "alertmanager")


def poll(check: Callable[[], object], timeout: float, what: str) -> object:
    """``check()`` until it returns something true (HTTP errors count as not yet)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            last = exc
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def test_compose_stack_sees_vllm_containers_and_fires_a_rule(docker_engine: DockerEngine) -> None:
    engine = docker_engine
    compose = require_tool("docker-compose")
    tag = uuid.uuid4().hex[:6]
    project = f"iw{tag}"
    ports = {name: free_port() for name in ("NATS", "AGGREGATOR", "PROMETHEUS", "ALERTMANAGER", "GRAFANA")}
    env = {
        **engine.env(),
        **{f"{name}_HOST_PORT": str(port) for name, port in ports.items()},
        "COMPOSE_PROJECT_NAME": project,
        "DOCKER_SOCKET": str(engine.socket),
    }

    def run(*args: str, timeout: float = 600) -> str:
        result = subprocess.run(
            [compose, "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, f"docker-compose {' '.join(args)}: {result.stderr[-3000:]}"
        return result.stdout

    aggregator = f"http://127.0.0.1:{ports['AGGREGATOR']}"
    prometheus = f"http://127.0.0.1:{ports['PROMETHEUS']}"
    try:
        started = time.monotonic()
        env.update(make_compose_images(engine))
        print(f"\nimages ready in {time.monotonic() - started:.0f} s")
        run("up", "-d", "--no-build", *SERVICES)
        print(f"compose up returned after {time.monotonic() - started:.0f} s")
        network = f"{project}_default"
        # vLLM-shaped containers on the stack's network: one serving the recorded exposition, one whose server
        # never answers (VllmTargetDown fires for it in Prometheus).
        for name, command in (
            (f"vllm-ok-{tag}", ["serve-recorded", "--port", "8000"]),
            (f"vllm-down-{tag}", ["sleep", "3600"]),
        ):
            engine.docker(
                *("run", "-d", "--init", "--name", name, "--network", network, "--label", f"test={tag}"),
                *("--label", "inferwatch.kind=vllm", BUSYBOX_IMAGE, *command),
            )

        def metrics() -> str:
            return httpx.get(aggregator + "/metrics", timeout=5).text

        def vllm_up(body: str, container: str) -> str:
            match = re.search(rf'inferwatch_vllm_up\{{[^}}]*container="{container}"[^}}]*\}} (\S+)', body)
            return match.group(1) if match else ""

        def both_series() -> str | None:
            body = metrics()
            ok, down = vllm_up(body, f"vllm-ok-{tag}"), vllm_up(body, f"vllm-down-{tag}")
            return body if (ok, down) == ("1", "0") else None

        body = poll(both_series, timeout=180, what="the aggregator serving both containers' vLLM series")
        print(f"\nseries served {time.monotonic() - started:.0f} s after the test began")
        assert isinstance(body, str)
        assert re.search(rf'inferwatch_container_info\{{[^}}]*container="vllm-ok-{tag}"[^}}]*kind="vllm"', body)
        assert re.search(rf'inferwatch_container_info\{{[^}}]*container="{project}_aggregator_1"', body)

        def aggregator_target_up() -> bool:
            targets = httpx.get(prometheus + "/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
            return any(t["labels"]["job"] == "inferwatch-aggregator" and t["health"] == "up" for t in targets)

        poll(aggregator_target_up, timeout=120, what="Prometheus scraping the aggregator, target up")

        def firing() -> list[str]:
            alerts = httpx.get(prometheus + "/api/v1/alerts", timeout=5).json()["data"]["alerts"]
            return [
                a["labels"]["alertname"]
                for a in alerts
                if a["state"] == "firing" and a["labels"].get("container") == f"vllm-down-{tag}"
            ]

        assert poll(firing, timeout=180, what="VllmTargetDown firing in Prometheus") == ["VllmTargetDown"]
        print(f"rule firing {time.monotonic() - started:.0f} s after the test began")
    finally:
        for cid in engine.docker("ps", "-aq", "--filter", f"label=test={tag}", check=False).stdout.split():
            engine.docker("rm", "-f", cid, check=False)
        down_started = time.monotonic()
        run("down", "--volumes", "--remove-orphans", timeout=300)
        print(f"compose down took {time.monotonic() - down_started:.0f} s")
    label = f"label=com.docker.compose.project={project}"
    assert engine.docker("ps", "-aq", "--filter", label).stdout.split() == []
    assert engine.docker("network", "ls", "-q", "--filter", label).stdout.split() == []
    assert engine.docker("volume", "ls", "-q", "--filter", label).stdout.split() == []
