"""Containers on a Docker host: the host's whole container list, and lifecycle facts."""

from __future__ import annotations

from typing import Literal

import msgspec

from inferwatch.contracts.base import Occurrence, Snapshot

# What a container serves, when recognised; ``""`` for everything else.
ContainerKind = Literal["", "vllm"]
# The Docker event actions docker-watcher follows (Docker's ``health_status: healthy`` travels as ``health_status``).
LifecycleAction = Literal[
    "create",
    "start",
    "die",
    "stop",
    "kill",
    "oom",
    "health_status",
    "restart",
    "pause",
    "unpause",
    "destroy",
    "rename",
    "update",
]
# The failure signatures docker-watcher recognises in a vLLM container's log.
LogSignature = Literal["cuda_oom", "nccl_error", "engine_dead", "model_load_failed"]


class ContainerInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What inferwatch knows about one container.

    Attributes:
        id: full container id.
        name: container name without the leading slash.
        image: image reference as given (``vllm/vllm-openai:v0.8.5``).
        state: ``running`` / ``exited`` / ``paused`` / ``restarting`` / ``created`` / ``dead``.
        health: ``healthy`` / ``unhealthy`` / ``starting`` / ``""`` (no healthcheck).
        started_at: Unix seconds, 0 when never started.
        restart_count: Docker's restart count.
        kind: what it serves, if recognised (``vllm``), else ``""``.
        vllm_version: detected vLLM version (image tag or OCI label; confirmed later by ``/version``).
        models: served model names.
        model_path: the ``--model`` path or HF id.
        gpus: GPU indexes or UUIDs assigned; ``["all"]`` for ``--gpus all``.
        cuda_version: from the image environment.
        tensor_parallel_size: ``--tensor-parallel-size``, 0 if unknown.
        quantization: ``--quantization`` value.
        max_model_len: ``--max-model-len``, 0 if unknown.
        scrape_url: the address to scrape, when the container serves HTTP.
        labels: a bounded subset of container labels (``inferwatch.*`` and compose project/service).
        events_total: lifecycle events seen for this container by the watcher, cumulative, by action.
        log_signatures_total: failure signatures seen in its log by the watcher, cumulative, by signature.
    """

    id: str
    name: str
    image: str
    state: str
    health: str = ""
    started_at: float = 0.0
    restart_count: int = 0
    kind: ContainerKind = ""
    vllm_version: str = ""
    models: list[str] = []
    model_path: str = ""
    gpus: list[str] = []
    cuda_version: str = ""
    tensor_parallel_size: int = 0
    quantization: str = ""
    max_model_len: int = 0
    scrape_url: str = ""
    labels: dict[str, str] = {}
    events_total: dict[str, float] = {}
    log_signatures_total: dict[str, float] = {}


class DockerHostSnapshot(Snapshot, frozen=True, kw_only=True, tag="docker.host"):
    """Every container on one Docker host. ``source`` is the host name.

    Attributes:
        engine_version: Docker Engine version.
        containers: all containers (not only vLLM), for the container overview.
    """

    engine_version: str
    containers: list[ContainerInfo]


class ContainerLifecycle(Occurrence, frozen=True, kw_only=True, tag="docker.lifecycle"):
    """A container changed state. ``source`` is the container id.

    Attributes:
        host: Docker host name.
        name: container name.
        action: Docker event action (``start``, ``die``, ``oom``, ``health_status``, ``destroy``…).
        exit_code: for ``die``, else -1.
        kind: recognised kind of the container, if any.
    """

    host: str
    name: str
    action: LifecycleAction
    exit_code: int = -1
    kind: ContainerKind = ""


class ContainerLogSignature(Occurrence, frozen=True, kw_only=True, tag="docker.logsignature"):
    """A known failure signature seen in a vLLM container's log (CUDA OOM, NCCL error, engine dead…).

    Attributes:
        host: Docker host name.
        name: container name.
        signature: stable identifier (``cuda_oom``, ``engine_dead``, ``nccl_error``, ``model_load_failed``).
        line: the matching log line, truncated to 512 characters.
    """

    host: str
    name: str
    signature: LogSignature
    line: str
