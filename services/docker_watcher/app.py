"""docker-watcher's I/O edges: the Docker Engine API (aiodocker, read-only) in, events on NATS out.

On (re)connect: ``/version``, ``/info``, the full container list (inspected one by one), then the
``/events`` stream. Every ``resync_s`` the list is read again, which repairs anything the stream
missed; containers that vanished are dropped, so no ghost survives a missed ``destroy``. Losing the
socket (daemon restart) means backoff, reconnect, resync.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
from typing import Any

import aiodocker
import aiohttp
import msgspec
from aiodocker.multiplexed import multiplexed_result_stream
from prometheus_client import Counter

from inferwatch.contracts.discovery import ScrapeTarget, TargetFound, TargetLost, TargetSet
from inferwatch.contracts.docker import (
    ContainerInfo,
    ContainerKind,
    ContainerLifecycle,
    ContainerLogSignature,
    DockerHostSnapshot,
)
from inferwatch.services.docker_watcher.config import DockerWatcherConfig
from inferwatch.services.docker_watcher.core import (
    MAX_LOG_LINE,
    container_info,
    lifecycle_action,
    log_signature,
    scrape_target,
    split_log_stream,
    wanted,
)
from inferwatch.shared.loop import Ticker
from inferwatch.shared.service import ServiceContext

log = logging.getLogger("inferwatch.docker_watcher")

DEFAULT_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock", os.path.expanduser("~/.docker/run/docker.sock"))
DOCKER_ERRORS = (aiodocker.DockerError, aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError)


class InspectRefusedError(Exception):
    """The engine refused to inspect one container (a 5xx for that container alone)."""


class DockerWatcher:
    """The container table of one Docker host and what it has announced."""

    def __init__(self, config: DockerWatcherConfig, ctx: ServiceContext) -> None:
        self.config = config
        self.ctx = ctx
        self.host = config.host_name
        self.engine_version = ""
        self.containers: dict[str, ContainerInfo] = {}
        self.events_total: dict[str, dict[str, float]] = {}
        self.signatures_total: dict[str, dict[str, float]] = {}
        self.targets: dict[str, ScrapeTarget] = {}  # by container id
        self.log_tasks: dict[str, asyncio.Task[None]] = {}
        self.docker: aiodocker.Docker | None = None
        self._include_labels = dict(config.include_labels)
        self._exclude_labels = dict(config.exclude_labels)
        self.inspect_failures = Counter(
            "inferwatch_docker_inspect_failures",
            "Container inspections the engine refused (5xx), by status; the container keeps its last known state.",
            ["status"],
            registry=ctx.registry,
        )

    # ---- pure-ish state changes -------------------------------------------------------------

    def _info(self, inspect: dict[str, Any]) -> ContainerInfo:
        return container_info(
            inspect,
            image_patterns=self.config.image_patterns,
            publish_host=self.config.publish_host,
            address_mode=self.config.address_mode,
        )

    def _wanted(self, info: ContainerInfo) -> bool:
        return wanted(
            info, self._include_labels, self._exclude_labels, self.config.include_names, self.config.exclude_names
        )

    async def _set_container(self, info: ContainerInfo | None, container_id: str, reason: str = "") -> None:
        """Record a container's new state (None: gone) and announce target changes."""
        if info is None or not self._wanted(info):
            self.containers.pop(container_id, None)
        else:
            self.containers[container_id] = info
        target = scrape_target(info, self.host) if info is not None and self._wanted(info) else None
        old = self.targets.get(container_id)
        now = time.time()
        if target is not None and target != old:
            if old is not None and old.url != target.url:
                await self._publish_lost(container_id, old, "address_changed", now)
            self.targets[container_id] = target
            await self.ctx.bus.publish(
                TargetFound(source=container_id, observed_at=now, collector=self.ctx.instance, target=target)
            )
        elif target is None and old is not None:
            del self.targets[container_id]
            await self._publish_lost(container_id, old, reason or (info.state if info else "removed"), now)
        if target is not None and self.config.follow_logs and container_id not in self.log_tasks:
            self.log_tasks[container_id] = asyncio.create_task(
                self._follow_logs(container_id), name=f"logs-{container_id[:12]}"
            )
        if target is None and (task := self.log_tasks.pop(container_id, None)) is not None:
            task.cancel()
        self.ctx.targets = len(self.targets)

    async def _publish_lost(self, container_id: str, target: ScrapeTarget, reason: str, now: float) -> None:
        await self.ctx.bus.publish(
            TargetLost(source=container_id, observed_at=now, collector=self.ctx.instance, target=target, reason=reason)
        )

    def snapshot(self) -> DockerHostSnapshot:
        """Every known container, with this watcher's cumulative event and signature counts."""
        return DockerHostSnapshot(
            source=self.host,
            observed_at=time.time(),
            collector=self.ctx.instance,
            interval_s=self.config.interval_s,
            engine_version=self.engine_version,
            containers=[
                msgspec.structs.replace(
                    info,
                    events_total=dict(self.events_total.get(cid, {})),
                    log_signatures_total=dict(self.signatures_total.get(cid, {})),
                )
                for cid, info in sorted(self.containers.items())
            ],
        )

    def target_set(self, targets: list[ScrapeTarget] | None = None) -> TargetSet:
        """The whole vLLM target set of this host (``targets``: the cached one, before the engine answers)."""
        return TargetSet(
            source=f"docker:{self.host}",
            observed_at=time.time(),
            collector=self.ctx.instance,
            interval_s=self.config.interval_s,
            targets=list(self.targets.values()) if targets is None else targets,
        )

    async def publish_state(self) -> None:
        """Publish the host snapshot and the target set (and keep the cache file current)."""
        await self.ctx.bus.publish(self.snapshot())
        await self.ctx.bus.publish(self.target_set())
        self._write_cache()

    # ---- cache ------------------------------------------------------------------------------

    def _write_cache(self) -> None:
        path = self.config.cache_file
        if not path:
            return
        tmp = path + ".tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(msgspec.json.encode(list(self.targets.values())))
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("cannot write target cache", extra={"path": path, "error": str(exc)})

    def load_cache(self) -> list[ScrapeTarget]:
        """Targets announced by the previous run (re-announced before Docker answers)."""
        if not self.config.cache_file:
            return []
        try:
            with open(self.config.cache_file, "rb") as f:
                return msgspec.json.decode(f.read(), type=list[ScrapeTarget])
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return []

    # ---- Docker I/O ------------------------------------------------------------------------

    async def _inspect(self, container_id: str) -> dict[str, Any] | None:
        """The container's inspect document; None when it is gone (404).

        Raises:
            InspectRefusedError: the engine answered this one container with another error (a container
                mid-removal, a corrupt config): the caller skips it and the rest of the host carries on.
        """
        assert self.docker is not None
        try:
            container = self.docker.containers.container(container_id)
            data = await container.show()
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return None
            self.inspect_failures.labels(str(exc.status)).inc()
            log.warning(
                "container inspect refused",
                extra={"container": container_id[:12], "status": exc.status, "error": str(exc.message)[:200]},
            )
            raise InspectRefusedError(container_id) from None
        return data if isinstance(data, dict) else None

    async def resync(self) -> None:
        """Read the full container list again; drop what vanished, refresh the rest."""
        assert self.docker is not None
        listed = await self.docker.containers.list(all=True)
        seen: set[str] = set()
        for summary in listed:
            cid = summary.id
            try:
                inspect = await self._inspect(cid)
            except InspectRefusedError:
                seen.add(cid)  # still listed: keep what we knew rather than announce a removal
                continue
            if inspect is None:
                continue
            seen.add(cid)
            await self._set_container(self._info(inspect), cid)
        for cid in [c for c in (*self.containers, *self.targets) if c not in seen]:
            await self._set_container(None, cid, "removed")

    async def on_docker_event(self, event: dict[str, Any]) -> None:
        """One ``/events`` message: count it, re-inspect the container, publish the lifecycle fact."""
        if event.get("Type") != "container":
            return
        action = lifecycle_action(event)
        if action is None:
            return
        raw_actor = event.get("Actor")
        actor: dict[str, Any] = raw_actor if isinstance(raw_actor, dict) else {}
        cid = str(actor.get("ID") or event.get("id") or "")
        if not cid:
            return
        raw_attributes = actor.get("Attributes")
        attributes: dict[str, Any] = raw_attributes if isinstance(raw_attributes, dict) else {}
        refused = False
        try:
            inspect = None if action == "destroy" else await self._inspect(cid)
        except InspectRefusedError:
            inspect, refused = None, True  # announce the event; the container keeps its last known state
        info = self._info(inspect) if inspect is not None else None
        counts = self.events_total.setdefault(cid, {})
        counts[action] = counts.get(action, 0.0) + 1
        name = info.name if info else str(attributes.get("name", ""))
        exit_code = -1
        if action == "die":
            with contextlib.suppress(ValueError, TypeError):
                exit_code = int(attributes.get("exitCode", -1))
        await self.ctx.bus.publish(
            ContainerLifecycle(
                source=cid,
                observed_at=time.time(),
                collector=self.ctx.instance,
                host=self.host,
                name=name,
                action=action,
                exit_code=exit_code,
                kind=info.kind if info else self._known_kind(cid),
            )
        )
        if not refused:
            await self._set_container(info, cid, action)
        if action == "destroy":
            self.events_total.pop(cid, None)
            self.signatures_total.pop(cid, None)
        await self.publish_state()

    def _known_kind(self, cid: str) -> ContainerKind:
        info = self.containers.get(cid)
        return info.kind if info else ""

    async def _follow_logs(self, container_id: str) -> None:
        """Follow one container's log (from now on) and publish known failure signatures."""
        while self.docker is not None:
            docker = self.docker
            buffer = b""
            try:
                inspect = await self._inspect(container_id)
                if inspect is None:
                    return
                tty = bool((inspect.get("Config") or {}).get("Tty"))
                params = {"stdout": "1", "stderr": "1", "follow": "1", "since": str(int(time.time()))}
                # aiodocker's container.log() leaves the response open when the daemon drops the stream;
                # reading it here lets us close it on every path (EOF, error, cancel).
                async with docker._query(
                    f"containers/{container_id}/logs",
                    params=params,
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                ) as response:
                    try:
                        async for chunk in multiplexed_result_stream(response, is_tty=tty):  # type: ignore[no-untyped-call]
                            lines, buffer = split_log_stream(buffer, chunk.encode("utf-8", "replace"))
                            for line in lines:
                                await self._check_line(container_id, line)
                    finally:
                        response.close()
                return  # the log ended: the container stopped
            except asyncio.CancelledError:
                raise
            except aiodocker.DockerError as exc:
                if exc.status == 404:
                    return
            except (*DOCKER_ERRORS, InspectRefusedError):
                pass
            if await self.ctx.sleep(2.0):
                return

    async def _check_line(self, container_id: str, line: str) -> None:
        signature = log_signature(line)
        if not signature:
            return
        counts = self.signatures_total.setdefault(container_id, {})
        counts[signature] = counts.get(signature, 0.0) + 1
        info = self.containers.get(container_id)
        await self.ctx.bus.publish(
            ContainerLogSignature(
                source=container_id,
                observed_at=time.time(),
                collector=self.ctx.instance,
                host=self.host,
                name=info.name if info else "",
                signature=signature,
                line=line[:MAX_LOG_LINE],
            )
        )

    async def session(self) -> None:
        """One connection to the Docker Engine: initial read, then events and resyncs until it breaks."""
        docker = aiodocker.Docker(url=self.config.docker_host or None)
        self.docker = docker
        subscriber = None
        try:
            version = await docker.version()
            self.engine_version = str(version.get("Version", ""))
            info = await docker.system.info()
            if isinstance(info, dict) and info.get("Name") and not self.config.host_name:
                self.host = str(info["Name"])
            subscriber = docker.events.subscribe(filters=json.dumps({"type": ["container"]}))  # type: ignore[no-untyped-call]
            await self.resync()
            await self.publish_state()
            self.ctx.set_ready(
                True,
                f"watching Docker {self.engine_version}: {len(self.containers)} containers, {len(self.targets)} vLLM",
            )
            resync = Ticker(self.config.resync_s, first_in_s=self.config.resync_s)
            publish = Ticker(self.config.interval_s, first_in_s=self.config.interval_s)
            while not self.ctx.stop.is_set():
                timeout = max(0.01, min(resync.seconds_left(), publish.seconds_left()))
                try:
                    event = await asyncio.wait_for(subscriber.get(), timeout)
                except TimeoutError:
                    event = False
                if event is None:
                    raise ConnectionError("Docker event stream ended")
                if event:
                    await self.on_docker_event(event)
                if resync.due():
                    await self.resync()
                    resync.advance()
                if publish.due():
                    await self.publish_state()
                    publish.advance()
        finally:
            self.docker = None
            tasks = list(self.log_tasks.values())
            self.log_tasks.clear()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await docker.events.stop()  # type: ignore[no-untyped-call]
            with contextlib.suppress(Exception):
                await docker.close()


def _local_docker_configured() -> bool:
    """A default socket exists, or a docker context is named (aiodocker's own fallbacks)."""
    return bool(os.environ.get("DOCKER_CONTEXT")) or any(os.path.exists(p) for p in DEFAULT_SOCKETS)


async def run(ctx: ServiceContext, config: DockerWatcherConfig) -> None:
    """Watch until stopped; survive the Docker socket going away."""
    watcher = DockerWatcher(config, ctx)
    cached = watcher.load_cache()
    if cached:
        await ctx.bus.publish(watcher.target_set(cached))
    delay = 0.5
    while not ctx.stop.is_set():
        started = time.monotonic()
        if not config.docker_host and not _local_docker_configured():
            ctx.set_ready(True, "idle: no Docker socket found (set DOCKER_HOST)")
            if await ctx.sleep(config.max_backoff_s):
                return
            continue
        try:
            await watcher.session()
        except DOCKER_ERRORS as exc:  # ConnectionError is an OSError
            ctx.set_ready(False, f"Docker unreachable: {type(exc).__name__}")
            log.warning("docker connection lost", extra={"error": str(exc)[:200]})
        except Exception as exc:  # aiodocker raises AssertionError and others on odd setups: never die
            ctx.set_ready(False, f"Docker client error: {type(exc).__name__}")
            log.exception("docker session failed")
        if time.monotonic() - started > 30:
            delay = 0.5
        if await ctx.sleep(delay * random.uniform(0.8, 1.2)):
            return
        delay = min(delay * 2, config.max_backoff_s)
