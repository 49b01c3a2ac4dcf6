"""gpu-agent over the fake NVML: unsupported fields, NVML absence, driver reload, scenarios; end to end via NATS."""

from __future__ import annotations

import re
from pathlib import Path

import pynvml  # type: ignore[import-untyped]

from inferwatch.services.aggregator.domains.gpu import render_gpu_host
from inferwatch.services.aggregator.render import SeriesWriter
from inferwatch.services.gpu_agent.app import snapshot
from inferwatch.services.gpu_agent.config import GpuAgentConfig
from inferwatch.services.gpu_agent.core import container_id_from_cgroup
from inferwatch.services.gpu_agent.nvml import NvmlReader, read_cgroup_container
from inferwatch.simulators.nvml import FakeNvml, container_id_for
from tests import support

GIB = 1024**3
FIXTURES = support.FIXTURES / "gpu"


def fake_reader(fake: FakeNvml) -> NvmlReader:
    return NvmlReader(fake, container_of=lambda pid: container_id_from_cgroup(fake.cgroup_text(pid)))


def test_fake_container_ids_match_the_docker_demo() -> None:
    from inferwatch.simulators.docker_engine import container_id

    assert container_id_for("vllm-qwen3") == container_id("vllm-qwen3")


def test_reads_every_gpu_with_processes_in_containers() -> None:
    fake = FakeNvml(gpus=4)
    reader = fake_reader(fake)
    gpus = reader.read()
    assert [g.index for g in gpus] == [0, 1, 2, 3]
    assert len({g.uuid for g in gpus}) == 4
    assert reader.host == ("550.54.15", "12.4", "12.550.54.15")
    g1 = gpus[1]
    assert g1.memory_used_bytes == 71 * GIB
    assert g1.power_draw_watts == 350.0
    assert g1.sm_clock_hertz == 1.98e9
    # GPU 1's process is in a cgroup-v1 container, GPU 0's in a cgroup-v2 one: both resolved.
    assert g1.processes[0].container_id == container_id_for("vllm-qwen3")
    assert gpus[0].processes[0].container_id == container_id_for("vllm-qwen3")
    assert g1.processes[0].used_memory_bytes == 70 * GIB


def test_unsupported_field_is_skipped_and_not_retried() -> None:
    fake = FakeNvml(gpus=2)
    fake.gpus[1].unsupported |= {"nvmlDeviceGetPcieThroughput", "nvmlDeviceGetTotalEccErrors"}
    reader = fake_reader(fake)
    first = reader.read()
    assert first[0].fan_speed_ratio is None
    assert first[0].unsupported == ["fan"]
    assert first[1].unsupported == ["ecc_corrected", "ecc_uncorrected", "fan", "pcie_rx", "pcie_tx"]
    assert first[1].pcie_tx_bytes_per_second is None
    assert first[0].pcie_tx_bytes_per_second is not None
    calls_first = fake.calls
    reader.read()
    # Second cycle asks only the supported fields: 2 GPUs x (13 fields + 2 process lists - unsupported).
    assert fake.calls - calls_first == (13 + 2 - 1) + (13 + 2 - 5)


def test_library_not_found_keeps_running_and_retries() -> None:
    fake = FakeNvml(gpus=2, library_missing=True)
    reader = fake_reader(fake)
    snap = snapshot(reader, GpuAgentConfig(host="h"), "c")
    assert snap.nvml_available is False
    assert snap.error == "library_not_found"
    assert snap.gpus == []
    fake.library_missing = False  # the driver gets installed
    snap = snapshot(reader, GpuAgentConfig(host="h"), "c")
    assert snap.nvml_available is True
    assert len(snap.gpus) == 2
    assert snap.driver_version == "550.54.15"


def test_real_pynvml_without_library_reports_why() -> None:
    reader = NvmlReader(pynvml)
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:  # a real NVIDIA host: nothing to assert about absence here
        pynvml.nvmlShutdown()
        assert reader.read() is not None
        return
    assert reader.read() == []
    assert reader.available is False
    assert reader.error in ("library_not_found", "driver_not_loaded")


def test_driver_reload_reinitialises_and_refreshes_handles() -> None:
    fake = FakeNvml(gpus=2)
    reader = fake_reader(fake)
    assert len(reader.read()) == 2
    assert reader.init_count == 1
    fake.reload_driver()
    assert reader.read() == []  # this cycle saw the stale handles
    assert reader.available is False
    assert reader.error == "uninitialized"
    assert len(reader.read()) == 2
    assert reader.init_count == 2
    assert reader.available


def test_scenarios_memory_pressure_thermal_and_xid() -> None:
    gpus = fake_reader(FakeNvml(gpus=4, scenario="memory_pressure")).read()
    assert gpus[0].memory_free_bytes == GIB // 2
    assert gpus[0].memory_utilization_ratio == 0.98
    gpus = fake_reader(FakeNvml(gpus=4, scenario="thermal")).read()
    assert gpus[1].temperature_celsius == 92
    assert gpus[1].throttle_reasons == ["sw_thermal_slowdown", "hw_thermal_slowdown"]
    gpus = fake_reader(FakeNvml(gpus=4, scenario="xid")).read()
    assert gpus[2].error == "gpu_lost"
    assert gpus[2].memory_used_bytes is None
    assert [g.error for g in gpus if g.index != 2] == ["", "", ""]  # the other GPUs carry on


def test_read_cgroup_container_from_a_proc_tree(tmp_path: Path) -> None:
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "cgroup").write_text((FIXTURES / "cgroup-v1-docker.txt").read_text())
    assert read_cgroup_container(str(tmp_path), 4242).startswith("3f1c2a9d8e7b")
    assert read_cgroup_container(str(tmp_path), 1) == ""  # gone process: no crash


def test_render_gpu_series_and_process_join_labels() -> None:
    reader = fake_reader(FakeNvml(gpus=4, scenario="xid"))
    snap = snapshot(reader, GpuAgentConfig(host="gpu-host"), "c")
    w = SeriesWriter()
    render_gpu_host(snap, w)
    text = "".join(w.freeze().values())
    g2 = snap.gpus[1]
    ident = f'host="gpu-host",gpu="1",uuid="{g2.uuid}"'
    assert 'inferwatch_gpu_nvml_available{host="gpu-host",reason=""} 1\n' in text
    assert f"inferwatch_gpu_memory_used_bytes{{{ident}}} 76235669504\n" in text
    cid = container_id_for("vllm-qwen3")[:12]
    assert (
        f'inferwatch_gpu_process_memory_used_bytes{{{ident},pid="1001",container_id="{cid}",kind="compute"}} '
        f"{70 * GIB}\n"
    ) in text
    assert f'inferwatch_gpu_field_unsupported{{{ident},field="fan"}} 1\n' in text
    assert "inferwatch_gpu_fan_speed_ratio{" not in text
    assert f'inferwatch_gpu_throttle_reason{{{ident},reason="hw_thermal_slowdown"}} 0\n' in text
    assert f"inferwatch_gpu_ecc_corrected_errors_total{{{ident}}} 0\n" in text
    assert re.search(r'inferwatch_gpu_up\{host="gpu-host",gpu="2",[^}]*error="gpu_lost"\} 0\n', text)
    assert 'inferwatch_gpu_temperature_celsius{host="gpu-host",gpu="2"' not in text
