"""A fake Docker Engine API on a unix socket, for tests and ``inferwatch up --demo``.

Serves what docker-watcher reads, in the Engine API's shapes, on versioned (``/v1.47/…``) and
unversioned paths: ``/_ping``, ``/version``, ``/info``, ``/containers/json`` (``all``, ``filters``),
``/containers/{id}/json``, streaming ``/events`` (one queue per client), ``/containers/{id}/stats?stream=false``
and ``/containers/{id}/logs`` (multiplexed stdout/stderr frames, ``follow``). Containers are driven
by methods (`FakeDockerEngine.start`, `stop`, `kill`, `restart`, `docker_restart`, `destroy`, `log`) that also emit
the events in the order a real engine sends them (recorded from Engine 20.10 in tests/fixtures/docker/engine-20.10).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import json
import os
import random
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from inferwatch.simulators.demo import Demo
from inferwatch.simulators.vllm import SimulatedVllm, VllmGeneration, build_app

if TYPE_CHECKING:
    from inferwatch.simulators.scenarios import Scenario

API_VERSION = "1.47"
ENGINE_VERSION = "27.3.1-fake"


def _rfc3339(ts: float) -> str:
    if ts <= 0:
        return "0001-01-01T00:00:00Z"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int((ts % 1) * 1e9):09d}Z"


@dataclass
class FakeContainer:
    """One container as the fake engine holds it."""

    id: str
    name: str
    image: str
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    device_requests: list[dict[str, Any]] = field(default_factory=list)
    ports: dict[int, tuple[str, int]] = field(default_factory=dict)  # container port -> (host ip, host port)
    network_mode: str = "bridge"
    ip: str = "172.17.0.2"
    state: str = "created"
    health: str = ""
    exit_code: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0
    restart_count: int = 0
    created: float = field(default_factory=time.time)
    inspect_error: str = ""  # non-empty: /containers/{id}/json answers 500 with this message (a broken container)
    log_queues: list[asyncio.Queue[tuple[int, bytes] | None]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The ``/containers/json`` entry."""
        return {
            "Id": self.id,
            "Names": ["/" + self.name],
            "Image": self.image,
            "ImageID": "sha256:" + self.id,
            "Command": " ".join(self.entrypoint + self.cmd),
            "Created": int(self.created),
            "Ports": [
                {"PrivatePort": p, "PublicPort": hp, "Type": "tcp", "IP": hip} for p, (hip, hp) in self.ports.items()
            ],
            "Labels": self.labels,
            "State": self.state,
            "Status": "Up" if self.state == "running" else f"Exited ({self.exit_code})",
            "HostConfig": {"NetworkMode": self.network_mode},
            "NetworkSettings": {
                "Networks": {self.network_mode: {"IPAddress": "" if self.network_mode == "host" else self.ip}}
            },
        }

    def inspect(self) -> dict[str, Any]:
        """The ``/containers/{id}/json`` document."""
        running = self.state == "running"
        state: dict[str, Any] = {
            "Status": self.state,
            "Running": running,
            "Paused": self.state == "paused",
            "Restarting": self.state == "restarting",
            "OOMKilled": False,
            "Dead": self.state == "dead",
            "Pid": 4242 if running else 0,
            "ExitCode": self.exit_code,
            "Error": "",
            "StartedAt": _rfc3339(self.started_at),
            "FinishedAt": _rfc3339(self.finished_at),
        }
        if self.health:
            state["Health"] = {"Status": self.health, "FailingStreak": 0, "Log": []}
        return {
            "Id": self.id,
            "Created": _rfc3339(self.created),
            "Path": next(iter(self.entrypoint + self.cmd), ""),
            "Args": (self.entrypoint + self.cmd)[1:],
            "State": state,
            "Image": "sha256:" + self.id,
            "Name": "/" + self.name,
            "RestartCount": self.restart_count,
            "Driver": "overlay2",
            "HostConfig": {
                "NetworkMode": self.network_mode,
                "DeviceRequests": self.device_requests or None,
                "PortBindings": {
                    f"{p}/tcp": [{"HostIp": hip, "HostPort": str(hp)}] for p, (hip, hp) in self.ports.items()
                },
                "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
            },
            "Config": {
                "Hostname": self.id[:12],
                "Image": self.image,
                "Labels": self.labels,
                "Tty": False,
                "Env": [f"{k}={v}" for k, v in self.env.items()],
                "Cmd": self.cmd,
                "Entrypoint": self.entrypoint or None,
                "ExposedPorts": {f"{p}/tcp": {} for p in self.ports},
            },
            # as Engine 20.10 answers: no port bindings once stopped; the host network has no address
            "NetworkSettings": {
                "Ports": {f"{p}/tcp": [{"HostIp": hip, "HostPort": str(hp)}] for p, (hip, hp) in self.ports.items()}
                if running
                else {},
                "Networks": {
                    self.network_mode: {
                        "IPAddress": self.ip if running and self.network_mode != "host" else "",
                        "Gateway": "172.17.0.1" if running and self.network_mode != "host" else "",
                    }
                },
            },
        }


class FakeDockerEngine:
    """The fake engine's state and its HTTP application."""

    def __init__(self, name: str = "fake-docker-host") -> None:
        self.name = name
        self.containers: dict[str, FakeContainer] = {}
        self.event_queues: list[asyncio.Queue[dict[str, Any] | None]] = []
        self.requests: list[str] = []

    # ---- driving the simulation ----------------------------------------------------------------

    def add(self, container: FakeContainer) -> FakeContainer:
        """Create a container (``create`` event)."""
        self.containers[container.id] = container
        self.emit(container, "create")
        return container

    def emit(self, container: FakeContainer, action: str, **attributes: str) -> None:
        """Publish one event to every connected ``/events`` client."""
        now = time.time()
        event = {
            "Type": "container",
            "Action": action,
            "status": action,
            "id": container.id,
            "from": container.image,
            "Actor": {
                "ID": container.id,
                "Attributes": {"name": container.name, "image": container.image, **container.labels, **attributes},
            },
            "scope": "local",
            "time": int(now),
            "timeNano": int(now * 1e9),
        }
        for queue in list(self.event_queues):
            queue.put_nowait(event)

    def start(self, cid: str) -> None:
        """Start (or restart after a stop) a container."""
        c = self.containers[cid]
        c.state, c.started_at, c.exit_code = "running", time.time(), 0
        self.emit(c, "start")

    def set_health(self, cid: str, health: str) -> None:
        """Change the healthcheck status (``health_status: healthy``)."""
        c = self.containers[cid]
        c.health = health
        self.emit(c, f"health_status: {health}")

    def kill(self, cid: str, exit_code: int = 137, *, oom: bool = False) -> None:
        """Kill a container: ``kill`` (or ``oom``) then ``die``; its log stream ends."""
        c = self.containers[cid]
        self.emit(c, "oom" if oom else "kill", signal="9")
        c.state, c.exit_code, c.finished_at = "exited", exit_code, time.time()
        self.emit(c, "die", exitCode=str(exit_code))
        for queue in c.log_queues:
            queue.put_nowait(None)

    def stop(self, cid: str, exit_code: int = 143) -> None:
        """``docker stop``: ``kill`` (SIGTERM), ``die``, ``stop``, as Engine 20.10 sends them."""
        c = self.containers[cid]
        self.emit(c, "kill", signal="15")
        c.state, c.exit_code, c.finished_at = "exited", exit_code, time.time()
        self.emit(c, "die", exitCode=str(exit_code))
        self.emit(c, "stop")
        for queue in c.log_queues:
            queue.put_nowait(None)

    def restart(self, cid: str) -> None:
        """Docker's restart policy brought an exited container back: ``start`` (a real engine sends no
        ``restart`` event for it) and ``RestartCount`` + 1."""
        c = self.containers[cid]
        c.restart_count += 1
        self.start(cid)

    def docker_restart(self, cid: str) -> None:
        """``docker restart``: the `stop` sequence, ``start``, then ``restart``; ``RestartCount`` is unchanged
        (the real engine counts only restart-policy restarts)."""
        c = self.containers[cid]
        if c.state == "running":
            self.stop(cid)
        self.start(cid)
        self.emit(c, "restart")

    def destroy(self, cid: str) -> None:
        """Remove a container (``destroy`` event)."""
        c = self.containers.pop(cid)
        for queue in c.log_queues:
            queue.put_nowait(None)
        self.emit(c, "destroy")

    def log(self, cid: str, line: str, *, stderr: bool = True) -> None:
        """Write one log line to the container's followers."""
        for queue in self.containers[cid].log_queues:
            queue.put_nowait((2 if stderr else 1, line.encode() + b"\n"))

    async def close_streams(self) -> None:
        """End every streaming response (lets the server stop quickly)."""
        for queue in list(self.event_queues):
            queue.put_nowait(None)
        for c in self.containers.values():
            for q in c.log_queues:
                q.put_nowait(None)

    # ---- HTTP -----------------------------------------------------------------------------------

    def _lookup(self, ref: str) -> FakeContainer | None:
        if ref in self.containers:
            return self.containers[ref]
        for c in self.containers.values():
            if c.name == ref.lstrip("/") or (len(ref) >= 4 and c.id.startswith(ref)):
                return c
        return None

    @staticmethod
    def _not_found(ref: str) -> web.Response:
        return web.json_response({"message": f"No such container: {ref}"}, status=404)

    async def ping(self, _: web.Request) -> web.Response:
        return web.Response(text="OK", headers={"Api-Version": API_VERSION})

    async def version(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "Version": ENGINE_VERSION,
                "ApiVersion": API_VERSION,
                "MinAPIVersion": "1.24",
                "Os": "linux",
                "Arch": "amd64",
                "KernelVersion": "6.8.0",
                "GoVersion": "go1.22.7",
                "Components": [{"Name": "Engine", "Version": ENGINE_VERSION}],
            }
        )

    async def info(self, _: web.Request) -> web.Response:
        states = [c.state for c in self.containers.values()]
        return web.json_response(
            {
                "ID": "FAKE:ENGINE",
                "Name": self.name,
                "Containers": len(states),
                "ContainersRunning": states.count("running"),
                "ContainersPaused": states.count("paused"),
                "ContainersStopped": len(states) - states.count("running") - states.count("paused"),
                "ServerVersion": ENGINE_VERSION,
                "OperatingSystem": "Fake Linux",
                "NCPU": 2,
                "Runtimes": {"runc": {"path": "runc"}, "nvidia": {"path": "nvidia-container-runtime"}},
            }
        )

    async def list_containers(self, request: web.Request) -> web.Response:
        show_all = request.query.get("all", "") in ("1", "true", "True")
        try:
            filters = json.loads(request.query.get("filters", "{}") or "{}")
        except json.JSONDecodeError:
            return web.json_response({"message": "invalid filters"}, status=400)
        out = []
        for c in self.containers.values():
            if not show_all and c.state != "running" and "status" not in filters:
                continue
            if not _matches(c, filters):
                continue
            out.append(c.summary())
        return web.json_response(out)

    async def inspect(self, request: web.Request) -> web.Response:
        ref = request.match_info["cid"]
        c = self._lookup(ref)
        if c is None:
            return self._not_found(ref)
        if c.inspect_error:
            return web.json_response({"message": c.inspect_error}, status=500)
        return web.json_response(c.inspect())

    async def stats(self, request: web.Request) -> web.Response:
        ref = request.match_info["cid"]
        c = self._lookup(ref)
        if c is None:
            return self._not_found(ref)
        now = time.time()
        running = c.state == "running"
        usage = int(4e9 + (hash(c.id) % 1000) * 1e6) if running else 0
        return web.json_response(
            {
                "read": _rfc3339(now),
                "preread": _rfc3339(now - 1),
                "id": c.id,
                "name": "/" + c.name,
                "cpu_stats": {
                    "cpu_usage": {"total_usage": int((now - c.started_at) * 1e9) if running else 0},
                    "system_cpu_usage": int(now * 2e9),
                    "online_cpus": 2,
                },
                "precpu_stats": {"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0, "online_cpus": 2},
                "memory_stats": {"usage": usage, "limit": 64 * 1024**3, "stats": {"inactive_file": 0}},
                "networks": {"eth0": {"rx_bytes": 1024, "tx_bytes": 2048}},
                "pids_stats": {"current": 42 if running else 0},
            }
        )

    async def events(self, request: web.Request) -> web.StreamResponse:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.event_queues.append(queue)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            while (event := await queue.get()) is not None:
                await response.write(json.dumps(event).encode() + b"\n")
        finally:
            with contextlib.suppress(ValueError):
                self.event_queues.remove(queue)
        return response

    async def logs(self, request: web.Request) -> web.StreamResponse:
        ref = request.match_info["cid"]
        c = self._lookup(ref)
        if c is None:
            return self._not_found(ref)
        response = web.StreamResponse(headers={"Content-Type": "application/vnd.docker.multiplexed-stream"})
        await response.prepare(request)
        if request.query.get("follow", "") not in ("1", "true", "True") or c.state != "running":
            await response.write_eof()
            return response
        queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        c.log_queues.append(queue)
        try:
            while (item := await queue.get()) is not None:
                stream, data = item
                await response.write(struct.pack(">BxxxL", stream, len(data)) + data)
        finally:
            with contextlib.suppress(ValueError):
                c.log_queues.remove(queue)
        return response

    def app(self) -> web.Application:
        """The aiohttp application, on both path forms."""
        app = web.Application(middlewares=[self._record])
        for prefix in ("", "/v{ver}"):
            app.router.add_get(prefix + "/_ping", self.ping)
            app.router.add_get(prefix + "/version", self.version)
            app.router.add_get(prefix + "/info", self.info)
            app.router.add_get(prefix + "/containers/json", self.list_containers)
            app.router.add_get(prefix + "/containers/{cid}/json", self.inspect)
            app.router.add_get(prefix + "/containers/{cid}/stats", self.stats)
            app.router.add_get(prefix + "/containers/{cid}/logs", self.logs)
            app.router.add_get(prefix + "/events", self.events)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if len(self.requests) < 10_000:
            self.requests.append(request.path)
        result: web.StreamResponse = await handler(request)
        return result


def _matches(c: FakeContainer, filters: dict[str, Any]) -> bool:
    def values(key: str) -> list[str]:
        raw = filters.get(key)
        if isinstance(raw, dict):
            return [k for k, v in raw.items() if v]
        return [str(v) for v in raw] if isinstance(raw, list) else []

    if (wanted := values("status")) and c.state not in wanted:
        return False
    if (wanted := values("name")) and not any(w.lstrip("/") in c.name for w in wanted):
        return False
    if (wanted := values("id")) and not any(c.id.startswith(w) for w in wanted):
        return False
    for label in values("label"):
        key, eq, value = label.partition("=")
        if key not in c.labels or (eq and c.labels[key] != value):
            return False
    return True


async def serve_engine(engine: FakeDockerEngine, socket_path: str) -> web.AppRunner:
    """Serve ``engine`` on a unix socket; returns the runner (``cleanup()`` stops it)."""
    runner = web.AppRunner(engine.app(), access_log=None, shutdown_timeout=0.5, handler_cancellation=True)
    await runner.setup()
    await web.UnixSite(runner, socket_path).start()
    return runner


def container_id(name: str) -> str:
    """A deterministic 64-hex container id."""
    return hashlib.sha256(name.encode()).hexdigest()


def vllm_container(
    name: str,
    image: str,
    host_port: int,
    *,
    model: str,
    served_name: str = "",
    gpus: list[str] | int = 0,
    modern: bool = True,
    extra_args: list[str] | None = None,
) -> FakeContainer:
    """A vLLM container the way ``docker run --gpus … vllm/vllm-openai:<tag>`` creates it.

    ``gpus``, like ``docker run --gpus``: device ids (``device=2,3``) or a count of any GPUs.
    """
    if modern:
        entrypoint, cmd = ["vllm", "serve"], [model]
    else:
        entrypoint, cmd = ["python3", "-m", "vllm.entrypoints.openai.api_server"], ["--model", model]
    if served_name:
        cmd += ["--served-model-name", served_name]
    cmd += ["--port", "8000", *(extra_args or [])]
    requests: list[dict[str, Any]] = []
    if isinstance(gpus, list) and gpus:
        requests = [{"Driver": "nvidia", "Count": 0, "DeviceIDs": gpus, "Capabilities": [["gpu"]], "Options": {}}]
    elif isinstance(gpus, int) and gpus:
        requests = [{"Driver": "nvidia", "Count": gpus, "DeviceIDs": None, "Capabilities": [["gpu"]]}]
    return FakeContainer(
        id=container_id(name),
        name=name,
        image=image,
        entrypoint=entrypoint,
        cmd=cmd,
        labels={"com.docker.compose.project": "llm", "com.docker.compose.service": name},
        env={
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin",
            "CUDA_VERSION": "12.4.1",
            "NVIDIA_VISIBLE_DEVICES": "all",
            "VLLM_USAGE_SOURCE": "production-docker-image",
            "HF_TOKEN": "hf_demo_secret_never_exported",
        },
        device_requests=requests,
        ports={8000: ("127.0.0.1", host_port)},
        ip=f"172.17.0.{10 + host_port % 200}",
    )


@dataclass
class VllmBackend:
    """A simulated vLLM server behind one fake container; ``current`` is swapped on restart."""

    current: SimulatedVllm
    url: str = ""
    runner: web.AppRunner | None = None

    def fresh(self, load_seconds: float) -> None:
        """The process restarted: a new server that loads for ``load_seconds`` first."""
        old = self.current
        self.current = SimulatedVllm(
            old.model,
            old.root,
            old.generation,
            old.version,
            max_model_len=old.max_model_len,
            engines=old.engines,
            load_seconds=load_seconds,
            seed=old.seed + 1,
        )


async def serve_backend(inst: SimulatedVllm) -> VllmBackend:
    """Serve one simulated vLLM on a free loopback port through a swappable factory."""
    backend = VllmBackend(inst)
    runner = web.AppRunner(
        build_app(lambda: backend.current), access_log=None, shutdown_timeout=0.5, handler_cancellation=True
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    backend.url, backend.runner = f"http://127.0.0.1:{port}", runner
    return backend


def demo_specs() -> list[tuple[str, str, SimulatedVllm, dict[str, Any]]]:
    """(container name, image, simulated server, container options) for the demo host."""
    return [
        (
            "vllm-qwen3",
            "vllm/vllm-openai:v0.33.0",
            SimulatedVllm(
                "qwen3-8b", "Qwen/Qwen3-8B", VllmGeneration.V1, "0.33.0", max_model_len=32768, engines=2, seed=11
            ),
            {"served_name": "qwen3-8b", "gpus": ["0", "1"], "extra_args": ["--tensor-parallel-size", "2"]},
        ),
        (
            "vllm-llama31",
            "vllm/vllm-openai:v0.10.1",
            SimulatedVllm(
                "llama-3.1-8b-instruct",
                "meta-llama/Llama-3.1-8B-Instruct",
                VllmGeneration.V1_10,
                "0.10.1",
                max_model_len=16384,
                load_seconds=12.0,
                seed=12,
            ),
            {"served_name": "llama-3.1-8b-instruct", "gpus": ["2"], "extra_args": ["--max-model-len", "16384"]},
        ),
        (
            "vllm-mistral",
            "vllm/vllm-openai:v0.6.3.post1",
            SimulatedVllm(
                "mistral-7b-instruct", "mistralai/Mistral-7B-Instruct-v0.3", VllmGeneration.V0_6, "0.6.3.post1", seed=13
            ),
            {
                "served_name": "mistral-7b-instruct",
                "gpus": 1,
                "modern": False,
                "extra_args": ["--quantization", "awq"],
            },
        ),
        (
            "vllm-rocm-llama2",
            "vllm/vllm-openai-rocm:v0.5.3.post1",
            SimulatedVllm(
                "llama-2-13b-chat",
                "meta-llama/Llama-2-13b-chat-hf",
                VllmGeneration.V0_5,
                "0.5.3.post1",
                max_model_len=4096,
                seed=14,
                rps=0.5,
            ),
            {"served_name": "llama-2-13b-chat", "gpus": ["3"], "modern": False},
        ),
    ]


@dataclass
class DockerDemo:
    """A fake engine with vLLM containers backed by simulated servers."""

    engine: FakeDockerEngine
    socket_path: str
    runner: web.AppRunner
    backends: dict[str, VllmBackend]
    tmpdir: str

    @property
    def docker_host(self) -> str:
        """``DOCKER_HOST`` value for docker-watcher."""
        return f"unix://{self.socket_path}"

    def kill(self, cid: str) -> None:
        """Kill a container and make its server unreachable-ish (engine dead, 503)."""
        self.backends[cid].current.dead = True
        self.engine.kill(cid)

    def restart(self, cid: str, load_seconds: float = 8.0) -> None:
        """Restart a container: a fresh server that loads first."""
        self.backends[cid].fresh(load_seconds)
        self.engine.restart(cid)

    async def stop(self) -> None:
        """Stop the engine and every backend."""
        await self.engine.close_streams()
        await self.runner.cleanup()
        for backend in self.backends.values():
            if backend.runner is not None:
                await backend.runner.cleanup()
        with contextlib.suppress(OSError):
            os.unlink(self.socket_path)
        with contextlib.suppress(OSError):
            os.rmdir(self.tmpdir)


async def start_docker_demo(
    specs: list[tuple[str, str, SimulatedVllm, dict[str, Any]]] | None = None, *, extra_containers: bool = True
) -> DockerDemo:
    """Start the fake engine on a temp socket with vLLM containers (started) and a couple of others."""
    tmpdir = tempfile.mkdtemp(prefix="inferwatch-docker-")
    socket_path = os.path.join(tmpdir, "docker.sock")
    engine = FakeDockerEngine()
    backends: dict[str, VllmBackend] = {}
    for name, image, inst, options in specs if specs is not None else demo_specs():
        backend = await serve_backend(inst)
        port = int(backend.url.rsplit(":", 1)[1])
        container = engine.add(vllm_container(name, image, port, model=inst.root, **options))
        backends[container.id] = backend
        engine.start(container.id)
    if extra_containers:
        for name, image in (("postgres", "postgres:16"), ("redis", "redis:7-alpine")):
            other = engine.add(
                FakeContainer(
                    id=container_id(name),
                    name=name,
                    image=image,
                    entrypoint=["docker-entrypoint.sh"],
                    cmd=[name.split("-")[0]],
                )
            )
            engine.start(other.id)
    runner = await serve_engine(engine, socket_path)
    return DockerDemo(engine, socket_path, runner, backends, tmpdir)


def stuck_loading_scenario(demo: DockerDemo, backend: VllmBackend) -> Scenario:
    """``vllm_model_stuck_loading``: a new vLLM container starts whose model never finishes loading; ending the
    scenario lets the load finish. Each start is a new container (new id), so the scraper sees a new target."""
    from inferwatch.simulators.scenarios import Scenario

    port = int(backend.url.rsplit(":", 1)[1])
    created: list[str] = []  # container ids, newest last

    def start() -> None:
        if created and created[-1] in demo.engine.containers:
            demo.engine.kill(created[-1], 0)
            demo.engine.destroy(created[-1])
        backend.fresh(load_seconds=1e9)
        container = demo.engine.add(
            vllm_container(
                f"vllm-warmup-{len(created) + 1}",
                "vllm/vllm-openai:v0.33.0",
                port,
                model=backend.current.root,
                served_name=backend.current.model,
                gpus=1,
            )
        )
        created.append(container.id)
        demo.engine.start(container.id)

    def stop() -> None:
        backend.current.load_seconds = 0.0  # the weights finally load

    return Scenario(
        "vllm_model_stuck_loading",
        "VllmModelStuckLoading",
        "a new vLLM container starts whose model never finishes loading",
        start,
        stop,
        labels={"target": backend.url},
    )


async def start_demo() -> Demo:
    """Hook for ``inferwatch up --demo``: the fake engine, ``DOCKER_HOST`` for docker-watcher, a scenario.

    Under ``INFERWATCH_SIM_CALM=1`` no container is killed at random.
    """
    from inferwatch.simulators.scenarios import CALM_ENV

    demo = await start_docker_demo()
    atexit.register(shutil.rmtree, demo.tmpdir, True)  # Demo.stop() only cleans the runners up
    rng = random.Random(7)
    warmup = await serve_backend(
        SimulatedVllm("qwen3-8b", "Qwen/Qwen3-8B", VllmGeneration.V1, "0.33.0", max_model_len=32768, seed=21)
    )

    async def scenario() -> None:
        ids = list(demo.backends)
        while True:
            await asyncio.sleep(rng.uniform(45, 90))
            victim = ids[rng.randrange(len(ids))]
            if rng.random() < 0.3:
                demo.engine.log(victim, "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
            demo.kill(victim)
            await asyncio.sleep(rng.uniform(20, 40))
            demo.restart(victim, load_seconds=rng.uniform(6, 15))

    return Demo(
        env={"DOCKER_HOST": demo.docker_host, "INFERWATCH_DOCKER_INTERVAL_S": "5"},
        runners=[
            demo.runner,
            *(b.runner for b in demo.backends.values() if b.runner),
            *([warmup.runner] if warmup.runner else []),
        ],
        run=None if os.environ.get(CALM_ENV) == "1" else scenario,
        scenarios=[stuck_loading_scenario(demo, warmup)],
    )
