"""gpu-agent pure functions: cgroup → container id (recorded cgroup files), unit normalisation, throttle names."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from inferwatch.services.gpu_agent.core import (
    container_id_from_cgroup,
    cuda_version_string,
    gpu_processes,
    gpu_reading,
    pod_uid_from_cgroup,
    throttle_reason_names,
)
from tests import support

FIXTURES = support.FIXTURES / "gpu"
CID = "3f1c2a9d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f"


@pytest.mark.parametrize(
    "name",
    [
        "cgroup-v1-docker.txt",
        "cgroup-v2-docker.txt",
        "cgroup-v1-k8s.txt",
        "cgroup-v2-k8s-containerd.txt",
        "cgroup-v2-k8s-crio.txt",
        "cgroup-v2-podman.txt",
        "cgroup-v2-podman-rootless.txt",
    ],
)
def test_container_id_from_cgroup_in_containers(name: str) -> None:
    assert container_id_from_cgroup((FIXTURES / name).read_text()) == CID


@pytest.mark.parametrize("name", ["cgroup-v1-host.txt", "cgroup-v2-host.txt"])
def test_host_process_has_no_container(name: str) -> None:
    assert container_id_from_cgroup((FIXTURES / name).read_text()) == ""


def test_garbage_cgroup_is_not_a_container() -> None:
    assert container_id_from_cgroup("") == ""
    assert container_id_from_cgroup("not a cgroup file\n\x00\xff") == ""
    assert container_id_from_cgroup("0::/docker/" + "g" * 64) == ""  # not hex
    assert container_id_from_cgroup("0::/docker/" + "a" * 63) == ""  # too short


def test_pod_uid_from_cgroup_both_spellings() -> None:
    uid = "7c8f2e4a-1b3d-4e5f-9a8b-0c1d2e3f4a5b"
    assert pod_uid_from_cgroup((FIXTURES / "cgroup-v1-k8s.txt").read_text()) == uid
    assert pod_uid_from_cgroup((FIXTURES / "cgroup-v2-k8s-containerd.txt").read_text()) == uid
    assert pod_uid_from_cgroup((FIXTURES / "cgroup-v2-docker.txt").read_text()) == ""


def test_throttle_reason_names() -> None:
    assert throttle_reason_names(0) == []
    assert throttle_reason_names(0x20 | 0x40) == ["sw_thermal_slowdown", "hw_thermal_slowdown"]
    assert throttle_reason_names(0x4 | 0x1) == ["gpu_idle", "sw_power_cap"]
    assert throttle_reason_names(0x1000) == ["bit_12"]


def test_cuda_version_string() -> None:
    assert cuda_version_string(12040) == "12.4"
    assert cuda_version_string(11080) == "11.8"
    assert cuda_version_string(0) == ""


def test_gpu_reading_normalises_units() -> None:
    raw = {
        "utilization": SimpleNamespace(gpu=87, memory=41),
        "memory": SimpleNamespace(used=71 * 1024**3, free=9 * 1024**3, total=80 * 1024**3),
        "temperature": 66,
        "power_usage": 412_345,
        "power_limit": 700_000,
        "sm_clock": 1980,
        "mem_clock": 2619,
        "throttle": 0x4,
        "ecc_corrected": 3,
        "ecc_uncorrected": 0,
        "pcie_tx": 1000,
        "pcie_rx": 2000,
    }
    r = gpu_reading(2, "GPU-x", "NVIDIA H100", raw, [], ["fan"])
    assert r.utilization_ratio == pytest.approx(0.87)
    assert r.memory_utilization_ratio == pytest.approx(0.41)
    assert r.memory_used_bytes == 71 * 1024**3
    assert r.power_draw_watts == pytest.approx(412.345)
    assert r.power_limit_watts == pytest.approx(700.0)
    assert r.sm_clock_hertz == pytest.approx(1.98e9)
    assert r.memory_clock_hertz == pytest.approx(2.619e9)
    assert r.fan_speed_ratio is None  # unsupported: absent, not 0
    assert r.throttle_reasons == ["sw_power_cap"]
    assert r.pcie_tx_bytes_per_second == 1024000.0
    assert r.ecc_corrected_total == 3.0
    assert r.unsupported == ["fan"]


def test_gpu_processes_merge_compute_and_graphics() -> None:
    compute = [SimpleNamespace(pid=10, usedGpuMemory=5 * 1024**3), SimpleNamespace(pid=11, usedGpuMemory=None)]
    graphics = [SimpleNamespace(pid=10, usedGpuMemory=1), SimpleNamespace(pid=3, usedGpuMemory=1024)]
    procs = gpu_processes(compute, graphics, {10: CID})
    assert [(p.pid, p.kind, p.container_id, p.used_memory_bytes) for p in procs] == [
        (3, "graphics", "", 1024.0),
        (10, "compute", CID, 5.0 * 1024**3),
        (11, "compute", "", 0.0),
    ]
