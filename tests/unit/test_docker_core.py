"""docker-watcher's pure core on recorded-shape ``/containers/{id}/json`` documents."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from inferwatch.contracts.docker import ContainerInfo
from inferwatch.services.docker_watcher.core import (
    classify,
    container_info,
    gpu_assignment,
    image_repository,
    image_tag,
    log_signature,
    parse_docker_time,
    parse_vllm_args,
    scrape_target,
    scrape_url,
    split_log_stream,
    vllm_version,
    wanted,
)
from tests import support

FIXTURES = support.FIXTURES / "docker"


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return doc


def test_modern_vllm_serve_with_device_ids() -> None:
    info = container_info(load("inspect-vllm-serve-deviceids.json"))
    assert info.kind == "vllm"
    assert info.name == "llm-qwen3-1"
    assert info.vllm_version == "0.33.0"
    assert info.models == ["qwen3-8b", "qwen3"]
    assert info.model_path == "Qwen/Qwen3-8B"
    assert info.gpus == ["0", "1"]
    assert info.cuda_version == "12.8.1"
    assert info.tensor_parallel_size == 2
    assert info.max_model_len == 32768
    assert info.scrape_url == "http://127.0.0.1:8001"  # published on all interfaces -> publish host
    assert info.restart_count == 2
    assert info.health == "healthy"
    assert info.started_at == pytest.approx(1795165965.532118790, abs=1e-3)  # 2026-11-20T09:12:45.532Z
    assert info.labels == {"com.docker.compose.project": "llm", "com.docker.compose.service": "qwen3"}
    encoded = msgspec.json.encode(info)
    assert b"sk-must-not-leak" not in encoded
    assert b"hf_secret_value" not in encoded


def test_legacy_api_server_gpus_all_and_container_ip() -> None:
    info = container_info(load("inspect-vllm-legacy-gpus-all.json"))
    assert (info.kind, info.vllm_version) == ("vllm", "0.6.3.post1")
    assert info.model_path == "mistralai/Mistral-7B-Instruct-v0.3"
    assert info.models == ["mistralai/Mistral-7B-Instruct-v0.3"]
    assert info.gpus == ["all"]
    assert (info.quantization, info.tensor_parallel_size, info.max_model_len) == ("awq", 4, 8192)
    assert info.scrape_url == "http://172.17.0.9:8000"  # nothing published: the container IP
    assert container_info(load("inspect-vllm-legacy-gpus-all.json"), address_mode="published").scrape_url == ""


def test_labels_win_and_host_network() -> None:
    doc = load("inspect-vllm-labelled-hostnet.json")
    assert classify(doc).evidence == "label"
    info = container_info(doc, publish_host="10.1.2.3")
    assert info.kind == "vllm"
    assert info.models == ["acme-70b"]
    assert info.vllm_version == "0.8.5"  # tag "latest" says nothing: the OCI label does
    assert info.gpus == ["GPU-5d1f0c3a-aaaa-bbbb-cccc-0123456789ab"]
    assert info.scrape_url == "http://10.1.2.3:9000"
    assert info.labels["inferwatch.port"] == "9000"


def test_other_containers_reported_not_scraped() -> None:
    info = container_info(load("inspect-postgres-exited.json"))
    assert (info.kind, info.state, info.restart_count, info.scrape_url) == ("", "exited", 5, "")
    assert scrape_target(info, "h") is None
    assert b"hunter2" not in msgspec.json.encode(info)


def test_opt_out_label_and_env_evidence() -> None:
    doc = load("inspect-vllm-serve-deviceids.json")
    doc["Config"]["Labels"]["inferwatch.kind"] = "other"
    assert classify(doc).kind == ""
    env_only = {"Path": "/bin/sh", "Args": [], "Config": {"Image": "acme/thing:1", "Env": ["VLLM_LOGGING_LEVEL=INFO"]}}
    assert classify(env_only).evidence == "env"
    cmd_only = {"Path": "/usr/local/bin/vllm", "Args": ["serve", "m"], "Config": {"Image": "acme/thing:1"}}
    assert classify(cmd_only).evidence == "command"
    rocm = {"Config": {"Image": "docker.io/vllm/vllm-openai-rocm:v0.9.0"}}
    assert classify(rocm).evidence == "image"
    assert classify({"Config": {"Image": "acme/x:1"}}, image_patterns=("acme/*",)).kind == "vllm"


def test_scrape_target_carries_container_and_gpus() -> None:
    info = container_info(load("inspect-vllm-serve-deviceids.json"))
    target = scrape_target(info, "gpu-box-1")
    assert target is not None
    assert target.url == "http://127.0.0.1:8001"
    assert target.container_name == "llm-qwen3-1"
    assert target.container_id == info.id
    assert (target.gpus, target.version) == (["0", "1"], "0.33.0")
    assert target.labels == {"host": "gpu-box-1", "model": "qwen3-8b"}
    stopped = msgspec.structs.replace(info, state="exited")
    assert scrape_target(stopped, "h") is None


@pytest.mark.parametrize(
    ("argv", "model", "served", "port", "grpc"),
    [
        (["vllm", "serve", "m/x", "--port=9000"], "m/x", ("m/x",), 9000, False),
        (["vllm", "serve", "--model", "m/y", "--served-model-name=a"], "m/y", ("a",), 0, False),
        (["vllm", "serve", "m/z", "--grpc"], "m/z", ("m/z",), 0, True),
        (
            ["python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "m/w", "--port", "8080"],
            "m/w",
            ("m/w",),
            8080,
            False,
        ),
        ([], "", (), 0, False),
    ],
)
def test_parse_vllm_args(argv: list[str], model: str, served: tuple[str, ...], port: int, grpc: bool) -> None:
    args = parse_vllm_args(argv)
    assert (args.model_path, args.served_names, args.port, args.grpc) == (model, served, port, grpc)


def test_grpc_instance_is_checked_over_grpc() -> None:
    doc = load("inspect-vllm-serve-deviceids.json")
    doc["Args"] = ["serve", "Qwen/Qwen3-8B", "--grpc", "--port", "8000"]
    assert container_info(doc).scrape_url == "grpc://127.0.0.1:8001"


def test_gpu_assignment_variants() -> None:
    def doc(requests: object, env: list[str]) -> dict[str, Any]:
        return {"HostConfig": {"DeviceRequests": requests}, "Config": {"Env": env}}

    assert gpu_assignment(doc([{"Driver": "nvidia", "Count": 2, "Capabilities": [["gpu"]]}], [])) == ["count:2"]
    assert gpu_assignment(doc([{"Driver": "cdi", "DeviceIDs": ["nvidia.com/gpu=all"]}], [])) == ["all"]
    assert gpu_assignment(doc(None, ["NVIDIA_VISIBLE_DEVICES=1,3"])) == ["1", "3"]
    assert gpu_assignment(doc(None, ["CUDA_VISIBLE_DEVICES=2"])) == ["2"]
    assert gpu_assignment(doc(None, ["NVIDIA_VISIBLE_DEVICES=void"])) == []
    assert gpu_assignment(doc([{"Driver": "", "Count": 1, "Capabilities": [["compute"]]}], [])) == []


def test_image_reference_parts_and_version() -> None:
    assert image_repository("reg:5000/vllm/vllm-openai:v0.8.5@sha256:ab") == "reg:5000/vllm/vllm-openai"
    assert image_tag("reg:5000/vllm/vllm-openai") == ""
    assert vllm_version("vllm/vllm-openai-cpu:v0.10.1-x86_64", {}) == "0.10.1"
    assert vllm_version("vllm/vllm-openai:latest", {}) == ""
    assert vllm_version("vllm/vllm-openai:nightly", {"org.opencontainers.image.version": "0.11.0rc1"}) == "0.11.0rc1"


def test_docker_time() -> None:
    assert parse_docker_time("0001-01-01T00:00:00Z") == 0.0
    assert parse_docker_time("2026-11-22T10:00:00Z") == 1795341600.0
    assert parse_docker_time("2026-11-22T10:00:00.25+01:00") == 1795341600.25 - 3600
    assert parse_docker_time("yesterday") == 0.0
    assert parse_docker_time(None) == 0.0


@pytest.mark.parametrize(
    ("line", "signature"),
    [
        ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", "cuda_oom"),
        ("RuntimeError: CUDA error: out of memory", "cuda_oom"),
        ("vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue.", "engine_dead"),
        ("ERROR 11-20 09:13:01 [core.py:700] EngineCore encountered a fatal error.", "engine_dead"),
        (
            "torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/NCCLUtils.hpp:275",
            "nccl_error",
        ),
        (
            "OSError: foo/bar is not a valid model identifier listed on 'https://huggingface.co/models'",
            "model_load_failed",
        ),
        ("ValueError: Model architectures ['FooForCausalLM'] are not supported for now.", "model_load_failed"),
        ("INFO 11-20 09:13:01 [loggers.py:123] Engine 000: Avg prompt throughput: 2381.6 tokens/s", ""),
    ],
)
def test_log_signatures(line: str, signature: str) -> None:
    assert log_signature(line) == signature


def test_split_log_stream_bounds_lines() -> None:
    lines, rest = split_log_stream(b"", b"first\r\nsec")
    assert (lines, rest) == (["first"], b"sec")
    lines, rest = split_log_stream(rest, b"ond\n\xff\xfe\n")
    assert lines == ["second", "\ufffd\ufffd"]
    assert rest == b""
    lines, rest = split_log_stream(b"", b"x" * 100, max_line=10)
    assert lines == ["x" * 10]
    assert rest == b""


def test_include_exclude_filters() -> None:
    info = ContainerInfo(id="1", name="vllm-a", image="i", state="running", labels={"inferwatch.team": "ml"})
    assert wanted(info, {}, {}, (), ())
    assert wanted(info, {"inferwatch.team": "ml"}, {}, (), ())
    assert not wanted(info, {"inferwatch.team": "web"}, {}, (), ())
    assert not wanted(info, {}, {"inferwatch.team": ""}, (), ())
    assert wanted(info, {}, {}, ("vllm-*",), ())
    assert not wanted(info, {}, {}, ("vllm-*",), ("*-a",))


def test_scrape_url_ipv6_binding() -> None:
    doc = {"NetworkSettings": {"Ports": {"8000/tcp": [{"HostIp": "fd00::1", "HostPort": "18000"}]}}}
    assert scrape_url(doc, 8000) == "http://[fd00::1]:18000"


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
        max_leaves=30,
    )
)
def test_container_info_never_raises_on_garbage(doc: object) -> None:
    data = doc if isinstance(doc, dict) else {"Config": doc, "State": doc, "HostConfig": doc, "Args": doc}
    info = container_info(data)
    assert isinstance(info, ContainerInfo)
