"""Peak dense throughput and memory bandwidth per GPU model, keyed by the name NVML reports.

One table, the only place these figures live: the aggregator exports them per GPU
(``inferwatch_gpu_peak_dense_flops_per_second``, ``inferwatch_gpu_peak_memory_bandwidth_bytes_per_second``), and
MFU/MBU follow from vLLM's ``estimated_*_per_gpu`` counters over these (the Prometheus recording rules in
``deploy/prometheus/rules``). FLOP/s are the dense 16-bit tensor-core peaks (BF16, or FP16 where the GPU has no
BF16), without 2:4 sparsity: NVIDIA's datasheets print the sparse figure, twice these. The README's table of
them ("GPU peak figures") is generated from this one (`scripts.readme_tables`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GpuPeak:
    """One GPU model's peaks.

    Attributes:
        dense_flops_per_second: 16-bit tensor-core peak without sparsity.
        memory_bandwidth_bytes_per_second: peak device-memory bandwidth.
        source: where the figures come from.
    """

    dense_flops_per_second: float
    memory_bandwidth_bytes_per_second: float
    source: str


_T = 1e12  # tera
_H100 = "NVIDIA H100 Tensor Core GPU datasheet"
_A100 = "NVIDIA A100 Tensor Core GPU datasheet"

GPU_PEAKS: dict[str, GpuPeak] = {
    "NVIDIA B200": GpuPeak(2250 * _T, 8.0 * _T, "NVIDIA HGX B200 datasheet (per GPU)"),
    "NVIDIA H200": GpuPeak(989.4 * _T, 4.8 * _T, "NVIDIA H200 Tensor Core GPU datasheet (SXM)"),
    "NVIDIA H200 NVL": GpuPeak(835.5 * _T, 4.8 * _T, "NVIDIA H200 Tensor Core GPU datasheet (NVL)"),
    "NVIDIA H100 80GB HBM3": GpuPeak(989.4 * _T, 3.35 * _T, _H100 + " (SXM)"),
    "NVIDIA H100 NVL": GpuPeak(835.5 * _T, 3.9 * _T, _H100 + " (NVL)"),
    "NVIDIA H100 PCIe": GpuPeak(756.5 * _T, 2.0 * _T, _H100 + " (PCIe)"),
    "NVIDIA A100-SXM4-80GB": GpuPeak(312 * _T, 2.039 * _T, _A100 + " (SXM 80GB)"),
    "NVIDIA A100-SXM4-40GB": GpuPeak(312 * _T, 1.555 * _T, _A100 + " (SXM 40GB)"),
    "NVIDIA A100 80GB PCIe": GpuPeak(312 * _T, 1.935 * _T, _A100 + " (PCIe 80GB)"),
    "NVIDIA A100-PCIE-40GB": GpuPeak(312 * _T, 1.555 * _T, _A100 + " (PCIe 40GB)"),
    "NVIDIA L40S": GpuPeak(362.05 * _T, 0.864 * _T, "NVIDIA L40S datasheet"),
    "NVIDIA L40": GpuPeak(181.05 * _T, 0.864 * _T, "NVIDIA L40 datasheet"),
    "NVIDIA L4": GpuPeak(121 * _T, 0.3 * _T, "NVIDIA L4 Tensor Core GPU datasheet"),
    "NVIDIA A10": GpuPeak(125 * _T, 0.6 * _T, "NVIDIA A10 Tensor Core GPU datasheet"),
    "Tesla T4": GpuPeak(65 * _T, 0.32 * _T, "NVIDIA T4 Tensor Core GPU datasheet (FP16: no BF16)"),
}


def gpu_peak(nvml_name: str) -> GpuPeak | None:
    """The peaks of the GPU model NVML calls ``nvml_name``; ``None`` for a model not in the table."""
    return GPU_PEAKS.get(nvml_name.strip())
