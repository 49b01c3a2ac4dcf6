"""The GPU peak table (shared/gpu_peaks.py) and its series, the denominators of MFU and MBU."""

from __future__ import annotations

from inferwatch.contracts.gpu import GpuHostSnapshot, GpuReading
from inferwatch.services.aggregator.domains import all_renderers
from inferwatch.services.aggregator.render import render_exposition
from inferwatch.services.aggregator.state import SourceTable
from inferwatch.shared.exposition import parse_exposition
from inferwatch.shared.gpu_peaks import GPU_PEAKS, gpu_peak
from inferwatch.simulators.nvml import FakeGpu


def test_the_simulated_gpu_name_is_in_the_table() -> None:
    peak = gpu_peak(FakeGpu.name)  # what the fake NVML (and a real H100 SXM) reports
    assert peak is not None
    assert (peak.dense_flops_per_second, peak.memory_bandwidth_bytes_per_second) == (989.4e12, 3.35e12)
    assert gpu_peak("NVIDIA Imaginary 9000") is None


def test_every_row_is_plausible_and_sourced() -> None:
    for name, peak in GPU_PEAKS.items():
        assert 50e12 <= peak.dense_flops_per_second <= 5e15, name
        assert 0.2e12 <= peak.memory_bandwidth_bytes_per_second <= 10e12, name
        assert peak.source, name


def test_peaks_are_exported_per_gpu_of_a_known_model_only() -> None:
    snapshot = GpuHostSnapshot(
        source="h",
        observed_at=0.0,
        collector="c",
        interval_s=5.0,
        nvml_available=True,
        gpus=[
            GpuReading(index=0, uuid="GPU-0", name="NVIDIA H100 80GB HBM3"),
            GpuReading(index=1, uuid="GPU-1", name="NVIDIA L4"),
            GpuReading(index=2, uuid="GPU-2", name="NVIDIA Imaginary 9000"),
        ],
    )
    table = SourceTable(all_renderers())
    table.apply(snapshot, now=0.0)
    exposed = parse_exposition(render_exposition(table.rendered()))
    flops = {s.labels["gpu"]: s.value for s in exposed["inferwatch_gpu_peak_dense_flops_per_second"].samples}
    bandwidth = {
        s.labels["gpu"]: s.value for s in exposed["inferwatch_gpu_peak_memory_bandwidth_bytes_per_second"].samples
    }
    assert flops == {"0": 989.4e12, "1": 121e12}
    assert bandwidth == {"0": 3.35e12, "1": 0.3e12}
