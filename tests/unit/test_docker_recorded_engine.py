"""What a real Docker Engine (20.10, recorded in tests/fixtures/docker/engine-20.10 by
``python -m tests.support.docker_engine``) answers, read by docker-watcher's pure core, and the fake engine
(simulators/docker_engine.py) held to the same shapes and event order."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from inferwatch.services.docker_watcher.core import container_info, lifecycle_action, scrape_target
from inferwatch.simulators.docker_engine import FakeContainer, FakeDockerEngine, container_id
from tests import support

RECORDED = support.FIXTURES / "docker" / "engine-20.10"


def recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


def recorded_events() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (RECORDED / "events-hostnet-life.jsonl").read_text().splitlines() if line]


def test_host_network_vllm_by_image_scraped_at_its_port_flag() -> None:
    info = container_info(recorded("inspect-vllm-hostnet.json"))
    assert (info.kind, info.state, info.name) == ("vllm", "running", "vllm-hostnet")
    assert info.scrape_url == "http://127.0.0.1:18000"
    assert info.models == ["qwen3-8b"]
    assert info.vllm_version == "0.33.0"
    assert info.labels == {"com.docker.compose.project": "llm"}
    assert "placeholder" not in json.dumps(info.labels) + info.cuda_version  # env values stay out
    target = scrape_target(info, "h")
    assert target is not None
    assert target.url == "http://127.0.0.1:18000"


def test_published_port_on_a_user_network_by_command_line() -> None:
    info = container_info(recorded("inspect-vllm-published.json"))
    assert info.kind == "vllm"
    assert info.scrape_url == "http://127.0.0.1:18001"
    assert info.models == ["Qwen/Qwen3-8B"]
    container = container_info(recorded("inspect-vllm-published.json"), address_mode="container")
    assert container.scrape_url == "http://172.17.0.2:8000"


def test_killed_and_exited_containers_offer_no_target() -> None:
    killed = container_info(recorded("inspect-vllm-hostnet-killed.json"))
    assert (killed.state, killed.kind) == ("exited", "vllm")
    assert scrape_target(killed, "h") is None
    other = container_info(recorded("inspect-exited.json"))
    assert (other.state, other.kind, other.started_at > 0) == ("exited", "", True)


def test_every_recorded_event_is_followed() -> None:
    actions = [lifecycle_action(e) for e in recorded_events()]
    assert actions == [e["Action"] for e in recorded_events()]
    assert "restart" in actions


def _event_shape(event: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    attributes = event["Actor"]["Attributes"]
    return event["Action"], tuple(sorted(k for k in attributes if k in ("signal", "exitCode")))


def test_fake_engine_sends_the_real_event_sequence() -> None:
    """run, docker stop, start, docker restart, kill, rm: same actions, same attributes, same exit codes."""
    engine = FakeDockerEngine()
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    engine.event_queues.append(queue)
    c = engine.add(
        FakeContainer(id=container_id("vllm-hostnet"), name="vllm-hostnet", image="vllm/vllm-openai:v0.33.0")
    )
    engine.start(c.id)
    engine.stop(c.id)
    engine.start(c.id)
    engine.docker_restart(c.id)
    engine.kill(c.id)
    engine.destroy(c.id)
    fake = [queue.get_nowait() for _ in range(queue.qsize())]
    real = recorded_events()
    assert [_event_shape(e) for e in fake if e] == [_event_shape(e) for e in real]
    exit_codes = [e["Actor"]["Attributes"].get("exitCode") for e in real if e["Action"] == "die"]
    assert [e["Actor"]["Attributes"].get("exitCode") for e in fake if e and e["Action"] == "die"] == exit_codes
    assert c.restart_count == 0  # docker restart is no restart-policy restart
    assert set(real[0]) == set(fake[0] or {})


def _types(doc: Any, paths: list[str]) -> dict[str, str]:
    out = {}
    for path in paths:
        value = doc
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        out[path] = type(value).__name__
    return out


READ_PATHS = [
    "Id",
    "Name",
    "Path",
    "Args",
    "RestartCount",
    "State.Status",
    "State.StartedAt",
    "Config.Image",
    "Config.Labels",
    "Config.Env",
    "Config.Cmd",
    "Config.Tty",
    "HostConfig.NetworkMode",
    "NetworkSettings.Ports",
    "NetworkSettings.Networks",
]


def test_fake_inspect_has_the_real_shapes() -> None:
    """Every field docker-watcher reads has the real engine's JSON type, running and stopped; a stopped
    container has no port bindings left, as on the real engine."""
    fake = FakeContainer(
        id=container_id("x"), name="x", image="busybox", cmd=["sleep", "1"], ports={8000: ("127.0.0.1", 18001)}
    )
    fake.state = "running"
    assert _types(fake.inspect(), READ_PATHS) == _types(recorded("inspect-vllm-published.json"), READ_PATHS)
    fake.state = "exited"
    real_killed = recorded("inspect-vllm-hostnet-killed.json")
    assert _types(fake.inspect(), READ_PATHS) == _types(real_killed, READ_PATHS)
    assert fake.inspect()["NetworkSettings"]["Ports"] == real_killed["NetworkSettings"]["Ports"] == {}
    host = FakeContainer(id=container_id("h"), name="h", image="busybox", network_mode="host", state="running")
    assert list(host.inspect()["NetworkSettings"]["Networks"]) == list(
        recorded("inspect-vllm-hostnet.json")["NetworkSettings"]["Networks"]
    )
