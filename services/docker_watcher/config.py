"""docker-watcher settings (``DOCKER_HOST`` and ``INFERWATCH_DOCKER_*``)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import ClassVar

from inferwatch.services.docker_watcher.core import DEFAULT_VLLM_IMAGES
from inferwatch.shared.settings import Env


def _pairs(items: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        if key.strip():
            out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class DockerWatcherConfig:
    """Attributes:
    docker_host: ``DOCKER_HOST`` (``unix:///var/run/docker.sock`` when empty: aiodocker's own search).
    host_name: ``INFERWATCH_DOCKER_HOST_NAME``, the name this Docker host is published under (default: hostname).
    interval_s: ``INFERWATCH_DOCKER_INTERVAL_S``, how often the container snapshot and target set are published.
    resync_s: ``INFERWATCH_DOCKER_RESYNC_S``, full relist that repairs anything the event stream missed.
    image_patterns: ``INFERWATCH_DOCKER_VLLM_IMAGES``, image repositories (globs allowed) that are vLLM.
    include_labels / exclude_labels: ``INFERWATCH_DOCKER_INCLUDE_LABELS`` / ``..._EXCLUDE_LABELS`` (``k=v`` or ``k``).
    include_names / exclude_names: ``INFERWATCH_DOCKER_INCLUDE_NAMES`` / ``..._EXCLUDE_NAMES`` (name globs).
    publish_host: ``INFERWATCH_DOCKER_PUBLISH_HOST``, address used for ports published on all interfaces.
    address_mode: ``INFERWATCH_DOCKER_ADDRESS_MODE``: ``auto`` / ``published`` / ``container``.
    follow_logs: ``INFERWATCH_DOCKER_FOLLOW_LOGS``, follow vLLM containers' logs for failure signatures.
    cache_file: ``INFERWATCH_DOCKER_CACHE_FILE``, where the vLLM target set is kept across restarts ("" = off).
    max_backoff_s: longest wait between reconnection attempts to the Docker socket.
    """

    ENV_PREFIX: ClassVar[str] = "INFERWATCH_DOCKER_"

    docker_host: str = ""
    host_name: str = ""
    interval_s: float = 15.0
    resync_s: float = 60.0
    image_patterns: tuple[str, ...] = DEFAULT_VLLM_IMAGES
    include_labels: tuple[tuple[str, str], ...] = ()
    exclude_labels: tuple[tuple[str, str], ...] = ()
    include_names: tuple[str, ...] = ()
    exclude_names: tuple[str, ...] = ()
    publish_host: str = "127.0.0.1"
    address_mode: str = "auto"
    follow_logs: bool = True
    cache_file: str = ""
    max_backoff_s: float = 30.0

    @classmethod
    def from_env(cls, env: Env) -> DockerWatcherConfig:
        """Read ``DOCKER_HOST`` and ``INFERWATCH_DOCKER_*``."""
        p = cls.ENV_PREFIX
        mode = env.get(p + "ADDRESS_MODE", "auto")
        return cls(
            docker_host=env.get("DOCKER_HOST"),
            host_name=env.get(p + "HOST_NAME") or socket.gethostname(),
            interval_s=env.float(p + "INTERVAL_S", cls.interval_s),
            resync_s=env.float(p + "RESYNC_S", cls.resync_s),
            image_patterns=env.list(p + "VLLM_IMAGES", DEFAULT_VLLM_IMAGES),
            include_labels=tuple(_pairs(env.list(p + "INCLUDE_LABELS")).items()),
            exclude_labels=tuple(_pairs(env.list(p + "EXCLUDE_LABELS")).items()),
            include_names=env.list(p + "INCLUDE_NAMES"),
            exclude_names=env.list(p + "EXCLUDE_NAMES"),
            publish_host=env.get(p + "PUBLISH_HOST", cls.publish_host),
            address_mode=mode if mode in ("auto", "published", "container") else "auto",
            follow_logs=env.bool(p + "FOLLOW_LOGS", True),
            cache_file=env.get(p + "CACHE_FILE"),
            max_backoff_s=env.float(p + "MAX_BACKOFF_S", cls.max_backoff_s),
        )
