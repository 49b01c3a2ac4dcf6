"""docker-watcher against a real Docker Engine: a private dockerd (tests/support/docker_engine.py) running
busybox containers shaped like vLLM (they serve a recorded exposition on the port their ``--port`` names).

docker-watcher, vllm-scraper and the aggregator run in the test's loop, reading the engine's socket the way
the compose stack's docker-watcher reads the mounted one.
"""

from __future__ import annotations

import re
import uuid

import pytest

from tests.support import free_port, get_text, running_service, wait_until
from tests.support.docker_engine import BUSYBOX_IMAGE, VLLM_IMAGE, DockerEngine, SocketProxy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

OOM_LINE = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"


def run_container(engine: DockerEngine, *args: str) -> str:
    """``docker run -d --init …`` (``--init``: PID 1 of a busybox container ignores SIGTERM without it)."""
    return engine.docker("run", "-d", "--init", *args).stdout.strip()


def series(body: str, name: str, **labels: str) -> list[str]:
    """Sample lines of ``name`` whose labels include ``labels``."""
    return [
        line
        for line in body.splitlines()
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items())
    ]


def value(line: str) -> float:
    return float(line.rsplit(" ", 1)[1])


def label_values(body: str, name: str, label: str, **labels: str) -> set[str]:
    return {m for line in series(body, name, **labels) for m in re.findall(rf'{label}="([^"]*)"', line)}


def engine_states(engine: DockerEngine, tag: str) -> dict[str, str]:
    """Name → state of this test's containers, as the engine lists them."""
    out = engine.docker("ps", "-a", "--filter", f"label=test={tag}", "--format", "{{.Names}} {{.State}}").stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def remove_test_containers(engine: DockerEngine, tag: str) -> None:
    """Remove every container this test started (they carry the label ``test=<tag>``)."""
    ids = engine.docker("ps", "-aq", "--filter", f"label=test={tag}").stdout.split()
    if ids:
        engine.docker("rm", "-f", *ids)


def watcher_env(nats_url: str, docker_host: str, host: str) -> dict[str, str]:
    return {
        "NATS_URL": nats_url,
        "DOCKER_HOST": docker_host,
        "INFERWATCH_DOCKER_HOST_NAME": host,
        "INFERWATCH_DOCKER_INTERVAL_S": "0.5",
        "INFERWATCH_DOCKER_RESYNC_S": "2",
        "INFERWATCH_DOCKER_MAX_BACKOFF_S": "0.5",
        "INFERWATCH_VLLM_INTERVAL_S": "0.5",
        "INFERWATCH_VLLM_SHARD": "0",
        "INFERWATCH_VLLM_SPREAD": "0",
        "INFERWATCH_AGGREGATOR_SWEEP_INTERVAL_S": "0.2",
        "INFERWATCH_AGGREGATOR_TOMBSTONE_S": "1",
    }


async def test_vllm_containers_on_a_real_engine(docker_engine: DockerEngine, nats_url: str) -> None:
    """Identified by image, label, command line and environment; host network and a published port; start,
    stop, kill, rm and ``docker restart`` counted; a CUDA OOM line counted; the daemon restarted: no ghosts."""
    engine = docker_engine
    tag = uuid.uuid4().hex[:6]
    host = f"real-host-{tag}"
    network = f"iw-{tag}"
    engine.docker("network", "create", network)  # a user-defined bridge: the default one is off (--bridge=none)
    try:
        ports = {kind: free_port() for kind in ("image", "label", "command", "env")}
        names = {kind: f"{kind}-{tag}" for kind in (*ports, "other")}
        common = ("--label", f"test={tag}")
        run_container(engine, "--name", names["image"], *common, "--network", "host", VLLM_IMAGE, "Qwen/Qwen3-8B")
        engine.docker("rm", "-f", names["image"])  # the same image again, now with the flags users pass
        run_container(
            engine,
            *("--name", names["image"], *common, "--network", "host"),
            *(VLLM_IMAGE, "Qwen/Qwen3-8B", "--served-model-name", "qwen3-8b"),
            *("--host", "127.0.0.1", "--port", str(ports["image"])),
        )
        run_container(
            engine,
            *("--name", names["label"], *common, "--network", "host", "--label", "inferwatch.kind=vllm"),
            *(BUSYBOX_IMAGE, "serve-recorded", "--host", "127.0.0.1", "--port", str(ports["label"])),
        )
        run_container(
            engine,
            *("--name", names["command"], *common, "--network", "host", BUSYBOX_IMAGE),
            *("python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "Qwen/Qwen3-8B"),
            *("--host", "127.0.0.1", "--port", str(ports["command"])),
        )
        run_container(  # bridge-style: container port 8000 published on the loopback; comes back after a daemon restart
            engine,
            *("--name", names["env"], *common, "--network", network, "-p", f"127.0.0.1:{ports['env']}:8000"),
            *("--restart", "unless-stopped", "-e", "VLLM_LOGGING_LEVEL=INFO"),
            *(BUSYBOX_IMAGE, "serve-recorded", "--port", "8000"),
        )
        run_container(engine, "--name", names["other"], *common, "--network", "host", BUSYBOX_IMAGE, "sleep", "3600")
        expected_targets = {
            names["image"]: f"http://127.0.0.1:{ports['image']}",
            names["label"]: f"http://127.0.0.1:{ports['label']}",
            names["command"]: f"http://127.0.0.1:{ports['command']}",
            names["env"]: f"http://127.0.0.1:{ports['env']}",
        }
        env = watcher_env(nats_url, engine.docker_host, host)
        async with (
            running_service("aggregator", env) as agg,
            running_service("vllm-scraper", env),
            running_service("docker-watcher", env),
        ):
            url = agg.url + "/metrics"

            async def body_where(check: object) -> str | None:
                body = await get_text(url)
                return body if callable(check) and check(body) else None

            def scraped(body: str) -> dict[str, str]:
                return {
                    c: t
                    for line in series(body, "inferwatch_vllm_up")
                    if value(line) == 1
                    for c, t in [(_label(line, "container"), _label(line, "target"))]
                    if c.endswith(tag)
                }

            body = await wait_until(
                lambda: body_where(lambda b: scraped(b) == expected_targets),
                timeout=30,
                what="every vLLM-shaped container discovered and scraped",
            )
            assert body is not None
            kinds = {
                c: _label(line, "kind")
                for line in series(body, "inferwatch_container_info", host=host)
                for c in [_label(line, "container")]
            }
            assert kinds == {**dict.fromkeys(expected_targets, "vllm"), names["other"]: ""}

            # A CUDA OOM line the container prints is counted (the follower reads from when the target was found).
            engine.docker("exec", names["image"], "sh", "-c", f"echo '{OOM_LINE}' >> /tmp/log")
            await wait_until(
                lambda: body_where(
                    lambda b: (
                        [
                            value(x)
                            for x in series(
                                b,
                                "inferwatch_container_log_signatures_total",
                                signature="cuda_oom",
                                container=names["image"],
                            )
                        ]
                        == [1.0]
                    )
                ),
                timeout=10,
                what="cuda_oom counted",
            )

            def action_count(body: str, container: str, action: str) -> float:
                found = series(body, "inferwatch_container_lifecycle_events_total", container=container, action=action)
                return value(found[0]) if found else 0.0

            # docker stop: kill (SIGTERM), die, stop; the target is lost. docker start: found again.
            engine.docker("stop", "-t", "5", names["label"])
            body = await wait_until(
                lambda: body_where(
                    lambda b: (
                        action_count(b, names["label"], "stop") == 1
                        and series(b, "inferwatch_container_state", container=names["label"], state="exited")[
                            0
                        ].endswith(" 1")
                        and names["label"] not in scraped(b)
                    )
                ),
                timeout=15,
                what="stopped container exited and its target gone",
            )
            assert body is not None
            assert action_count(body, names["label"], "die") == 1
            engine.docker("start", names["label"])
            await wait_until(
                lambda: body_where(
                    lambda b: names["label"] in scraped(b) and action_count(b, names["label"], "start") == 1
                ),
                timeout=15,
                what="started again",
            )

            # docker restart: counted as a restart action; Docker's RestartCount stays 0 (it counts policy restarts).
            engine.docker("restart", "-t", "5", names["image"])
            body = await wait_until(
                lambda: body_where(
                    lambda b: action_count(b, names["image"], "restart") == 1 and names["image"] in scraped(b)
                ),
                timeout=15,
                what="docker restart counted",
            )
            assert body is not None
            assert value(series(body, "inferwatch_container_restarts", container=names["image"])[0]) == 0.0

            # docker kill: kill and die counted, exited; docker rm: the container is gone.
            engine.docker("kill", names["command"])
            await wait_until(
                lambda: body_where(
                    lambda b: (
                        action_count(b, names["command"], "kill") == 1
                        and action_count(b, names["command"], "die") == 1
                        and names["command"] not in scraped(b)
                    )
                ),
                timeout=15,
                what="killed container counted",
            )
            engine.docker("rm", names["command"])
            await wait_until(
                lambda: body_where(lambda b: not series(b, "inferwatch_container_info", container=names["command"])),
                timeout=15,
                what="removed container gone",
            )

            # The daemon restarted: containers without a restart policy come back exited, the one with
            # unless-stopped running again; the watcher's view equals the engine's, with no ghost.
            engine.stop(remove_containers=False)
            engine.start()
            states = engine_states(engine, tag)
            assert states[names["env"]] == "running" or states[names["env"]] == "restarting"

            def watcher_states(body: str) -> dict[str, str]:
                return {
                    _label(line, "container"): _label(line, "state")
                    for line in series(body, "inferwatch_container_state", host=host)
                    if value(line) == 1
                }

            await wait_until(
                lambda: body_where(
                    lambda b: watcher_states(b) == engine_states(engine, tag) and set(scraped(b)) == {names["env"]}
                ),
                timeout=30,
                what="after the daemon restart: the engine's containers, states and targets, no ghost",
            )

    finally:
        remove_test_containers(engine, tag)
        engine.docker("network", "rm", network, check=False)


async def test_event_stream_cut_resyncs(docker_engine: DockerEngine, nats_url: str, tmp_path: object) -> None:
    """The socket between docker-watcher and the engine is cut; meanwhile a container is removed and another
    started. When the socket is back the watcher resyncs: the removed one is gone, the new one is there."""
    engine = docker_engine
    tag = uuid.uuid4().hex[:6]
    host = f"cut-host-{tag}"
    common = ("--label", f"test={tag}", "--network", "host")
    try:
        run_container(engine, "--name", f"keep-{tag}", *common, BUSYBOX_IMAGE, "sleep", "3600")
        run_container(engine, "--name", f"gone-{tag}", *common, BUSYBOX_IMAGE, "sleep", "3600")
        async with SocketProxy(str(engine.socket), f"{tmp_path}/proxy.sock") as proxy:
            env = watcher_env(nats_url, f"unix://{proxy.path}", host)
            env["INFERWATCH_DOCKER_RESYNC_S"] = "600"  # only the reconnection's own resync may repair the view
            async with running_service("aggregator", env) as agg, running_service("docker-watcher", env) as watcher:

                async def names() -> set[str] | None:
                    body = await get_text(agg.url + "/metrics")
                    found = label_values(body, "inferwatch_container_info", "container", host=host)
                    return {name for name in found if name.endswith(tag)}

                await wait_until(
                    lambda: _equals(names(), {f"keep-{tag}", f"gone-{tag}"}), timeout=15, what="initial containers"
                )
                await proxy.cut()
                await wait_until(lambda: _not_ready(watcher.url), timeout=10, what="watcher notices the cut")
                engine.docker("rm", "-f", f"gone-{tag}")
                run_container(engine, "--name", f"new-{tag}", *common, BUSYBOX_IMAGE, "sleep", "3600")
                proxy.resume()
                await wait_until(
                    lambda: _equals(names(), {f"keep-{tag}", f"new-{tag}"}),
                    timeout=15,
                    what="resynced after the cut, without the removed container",
                )
    finally:
        remove_test_containers(engine, tag)


def _label(line: str, name: str) -> str:
    match = re.search(rf'[{{,]{name}="([^"]*)"', line)
    return match.group(1) if match else ""


async def _equals(result: object, expected: object) -> bool:
    return await result == expected  # type: ignore[misc]


async def _not_ready(url: str) -> bool:
    import httpx

    async with httpx.AsyncClient(timeout=1) as client:
        return (await client.get(url + "/readyz")).status_code == 503
