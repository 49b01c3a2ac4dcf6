"""The aggregator's Docker renderer: container overview series from a host snapshot."""

from __future__ import annotations

from inferwatch.contracts.docker import ContainerInfo, DockerHostSnapshot
from inferwatch.services.aggregator.domains.docker import render_docker_host
from inferwatch.services.aggregator.render import SeriesWriter


def test_render_docker_host() -> None:
    snap = DockerHostSnapshot(
        source="gpu-1",
        observed_at=1.0,
        collector="c",
        interval_s=15.0,
        engine_version="27.3.1",
        containers=[
            ContainerInfo(
                id="a" * 64,
                name="vllm-0",
                image="vllm/vllm-openai:v0.33.0",
                state="running",
                health="healthy",
                started_at=1795165965.5,
                restart_count=2,
                kind="vllm",
                vllm_version="0.33.0",
                models=["qwen3-8b"],
                gpus=["0", "1"],
                cuda_version="12.8.1",
                events_total={"start": 3.0, "die": 2.0},
                log_signatures_total={"cuda_oom": 1.0},
            ),
            ContainerInfo(id="b" * 64, name="db", image="postgres:16", state="exited"),
        ],
    )
    w = SeriesWriter()
    render_docker_host(snap, w)
    text = "".join(w.freeze().values())
    ident = 'host="gpu-1",container="vllm-0",container_id="aaaaaaaaaaaa"'
    assert f'inferwatch_container_state{{{ident},state="running"}} 1\n' in text
    assert f'inferwatch_container_state{{{ident},state="exited"}} 0\n' in text
    assert f'inferwatch_container_health{{{ident},health="healthy"}} 1\n' in text
    assert f"inferwatch_container_restarts{{{ident}}} 2\n" in text
    assert f"inferwatch_container_started_timestamp_seconds{{{ident}}} 1795165965.5\n" in text
    assert f'inferwatch_container_lifecycle_events_total{{{ident},action="die"}} 2\n' in text
    assert f'inferwatch_container_log_signatures_total{{{ident},signature="cuda_oom"}} 1\n' in text
    assert 'gpus="0,1"' in text
    assert 'inferwatch_docker_engine_info{host="gpu-1",version="27.3.1"} 1\n' in text
    assert 'inferwatch_docker_containers{host="gpu-1",state="exited"} 1\n' in text
    assert 'inferwatch_container_health{host="gpu-1",container="db"' not in text  # no healthcheck: no series
    assert 'inferwatch_container_started_timestamp_seconds{host="gpu-1",container="db"' not in text
