"""Docker host snapshots → ``inferwatch_container_*``: the container overview of every Docker host."""

from __future__ import annotations

from inferwatch.contracts.docker import DockerHostSnapshot
from inferwatch.services.aggregator.render import Family, SeriesWriter, label_block, renderer_for

P = "inferwatch_container_"
INFO = Family(
    P + "info", "gauge", "Container metadata (image, kind, vLLM version, models, GPUs, CUDA version); always 1."
)
STATE = Family(P + "state", "gauge", "1 for the container's current state, 0 for the other known states.")
HEALTH = Family(P + "health", "gauge", "1 for the container's current healthcheck status (absent without one).")
RESTARTS = Family(P + "restarts", "gauge", "Docker's restart count of the container.")
STARTED = Family(P + "started_timestamp_seconds", "gauge", "When the container last started (Unix seconds).")
EVENTS = Family(P + "lifecycle_events", "counter", "Lifecycle events seen by the watcher since it started, by action.")
LOG_SIGNATURES = Family(
    P + "log_signatures",
    "counter",
    "Known failure signatures seen in the container's log (cuda_oom, nccl_error, engine_dead, model_load_failed).",
)
ENGINE_INFO = Family("inferwatch_docker_engine_info", "gauge", "Docker Engine version of each host; always 1.")
CONTAINERS = Family("inferwatch_docker_containers", "gauge", "Containers on the host by state.")

STATES = ("created", "running", "paused", "restarting", "exited", "dead")
HEALTHS = ("starting", "healthy", "unhealthy")


def render_docker_host(event: DockerHostSnapshot, w: SeriesWriter) -> None:
    """One Docker host: the engine, then each container."""
    host = event.source
    w.gauge(ENGINE_INFO, label_block({"host": host, "version": event.engine_version}), 1.0)
    by_state: dict[str, int] = dict.fromkeys(STATES, 0)
    for c in event.containers:
        state_key = c.state if c.state in by_state else "other"
        by_state[state_key] = by_state.get(state_key, 0) + 1
        ident = {"host": host, "container": c.name, "container_id": c.id[:12]}
        base = label_block(ident)
        w.gauge(
            INFO,
            label_block(
                {
                    **ident,
                    "image": c.image,
                    "kind": c.kind,
                    "vllm_version": c.vllm_version,
                    "models": ",".join(c.models),
                    "gpus": ",".join(c.gpus),
                    "cuda_version": c.cuda_version,
                    "compose_project": c.labels.get("com.docker.compose.project", ""),
                    "compose_service": c.labels.get("com.docker.compose.service", ""),
                }
            ),
            1.0,
        )
        for state in STATES:
            w.gauge(STATE, label_block({**ident, "state": state}), 1.0 if c.state == state else 0.0)
        if c.health:
            for health in HEALTHS:
                w.gauge(HEALTH, label_block({**ident, "health": health}), 1.0 if c.health == health else 0.0)
        w.gauge(RESTARTS, base, float(c.restart_count))
        if c.started_at > 0:
            w.gauge(STARTED, base, c.started_at)
        for action, count in sorted(c.events_total.items()):
            w.counter(EVENTS, label_block({**ident, "action": action}), count)
        for signature, count in sorted(c.log_signatures_total.items()):
            w.counter(LOG_SIGNATURES, label_block({**ident, "signature": signature}), count)
    for state, count in by_state.items():
        w.gauge(CONTAINERS, label_block({"host": host, "state": state}), float(count))


RENDERERS = renderer_for(DockerHostSnapshot, render_docker_host)
