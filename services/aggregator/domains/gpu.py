"""GPU host snapshots → ``inferwatch_gpu_*``: NVML readings per GPU and GPU memory per process/container.

Which container (and model) holds a GPU's memory is a PromQL join with the docker-watcher's
``inferwatch_container_info`` on the 12-hex ``container_id``::

    sum by (host, gpu, container_id) (inferwatch_gpu_process_memory_used_bytes)
      * on (container_id) group_left (container, image, models) inferwatch_container_info
"""

from __future__ import annotations

from inferwatch.contracts.gpu import THROTTLE_REASONS, GpuHostSnapshot
from inferwatch.services.aggregator.render import Family, SeriesWriter, label_block, renderer_for
from inferwatch.shared.gpu_peaks import gpu_peak

P = "inferwatch_gpu_"
NVML_AVAILABLE = Family(P + "nvml_available", "gauge", "1 when the gpu-agent could initialise NVML on the host.")
HOST_INFO = Family(P + "host_info", "gauge", "NVIDIA driver, CUDA driver and NVML versions of the host; always 1.")
INFO = Family(P + "info", "gauge", "GPU model name and UUID by index; always 1.")
UP = Family(P + "up", "gauge", "1 when the GPU could be read, 0 when it failed (gpu_lost: XID-style failure).")
UTIL = Family(P + "utilization_ratio", "gauge", "GPU (SM) utilisation over the last sample period, 0..1.")
MEM_UTIL = Family(P + "memory_utilization_ratio", "gauge", "Memory-controller utilisation, 0..1.")
MEM_USED = Family(P + "memory_used_bytes", "gauge", "GPU memory in use.")
MEM_FREE = Family(P + "memory_free_bytes", "gauge", "GPU memory free.")
MEM_TOTAL = Family(P + "memory_total_bytes", "gauge", "GPU memory in total.")
TEMP = Family(P + "temperature_celsius", "gauge", "GPU core temperature.")
POWER = Family(P + "power_draw_watts", "gauge", "Power draw.")
POWER_LIMIT = Family(P + "power_limit_watts", "gauge", "Enforced power limit.")
SM_CLOCK = Family(P + "sm_clock_hertz", "gauge", "SM clock.")
MEM_CLOCK = Family(P + "memory_clock_hertz", "gauge", "Memory clock.")
FAN = Family(P + "fan_speed_ratio", "gauge", "Fan speed, 0..1 (absent on passively cooled GPUs).")
THROTTLE = Family(P + "throttle_reason", "gauge", "1 for each clocks-throttle reason active now, else 0.")
ECC_CORRECTED = Family(P + "ecc_corrected_errors", "counter", "Corrected ECC errors (aggregate, since manufacture).")
ECC_UNCORRECTED = Family(P + "ecc_uncorrected_errors", "counter", "Uncorrected ECC errors (aggregate).")
PCIE_TX = Family(P + "pcie_tx_bytes_per_second", "gauge", "PCIe transmit throughput.")
PCIE_RX = Family(P + "pcie_rx_bytes_per_second", "gauge", "PCIe receive throughput.")
PEAK_FLOPS = Family(
    P + "peak_dense_flops_per_second",
    "gauge",
    "Dense 16-bit tensor-core peak of the GPU model, from inferwatch's table (absent for a model not in it).",
    "flops",
)
PEAK_BANDWIDTH = Family(
    P + "peak_memory_bandwidth_bytes_per_second",
    "gauge",
    "Peak memory bandwidth of the GPU model, from inferwatch's table (absent for a model not in it).",
    "bytes",
)
UNSUPPORTED = Family(P + "field_unsupported", "gauge", "1 for each NVML field the driver does not support on the GPU.")
PROC_MEM = Family(
    P + "process_memory_used_bytes",
    "gauge",
    "GPU memory used by a process, with its container id (join inferwatch_container_info on "
    "container_id for the container name, image and models).",
)

REASONS = tuple(name for _, name in THROTTLE_REASONS)


def render_gpu_host(event: GpuHostSnapshot, w: SeriesWriter) -> None:
    """One host: NVML availability and versions, then each GPU and its processes."""
    host = event.source
    w.gauge(
        NVML_AVAILABLE,
        label_block({"host": host, "reason": event.error if not event.nvml_available else ""}),
        1.0 if event.nvml_available else 0.0,
    )
    if event.nvml_available:
        w.gauge(
            HOST_INFO,
            label_block(
                {
                    "host": host,
                    "driver_version": event.driver_version,
                    "cuda_driver_version": event.cuda_driver_version,
                    "nvml_version": event.nvml_version,
                }
            ),
            1.0,
        )
    for g in event.gpus:
        ident = {"host": host, "gpu": str(g.index), "uuid": g.uuid}
        base = label_block(ident)
        w.gauge(INFO, label_block({**ident, "name": g.name}), 1.0)
        peak = gpu_peak(g.name)
        if peak is not None:  # from the model name alone: known even while the GPU cannot be read
            w.gauge(PEAK_FLOPS, base, peak.dense_flops_per_second)
            w.gauge(PEAK_BANDWIDTH, base, peak.memory_bandwidth_bytes_per_second)
        w.gauge(UP, label_block({**ident, "error": g.error}), 0.0 if g.error else 1.0)
        if g.error:
            continue
        w.gauge(UTIL, base, g.utilization_ratio)
        w.gauge(MEM_UTIL, base, g.memory_utilization_ratio)
        w.gauge(MEM_USED, base, g.memory_used_bytes)
        w.gauge(MEM_FREE, base, g.memory_free_bytes)
        w.gauge(MEM_TOTAL, base, g.memory_total_bytes)
        w.gauge(TEMP, base, g.temperature_celsius)
        w.gauge(POWER, base, g.power_draw_watts)
        w.gauge(POWER_LIMIT, base, g.power_limit_watts)
        w.gauge(SM_CLOCK, base, g.sm_clock_hertz)
        w.gauge(MEM_CLOCK, base, g.memory_clock_hertz)
        w.gauge(FAN, base, g.fan_speed_ratio)
        if "throttle" not in g.unsupported:
            active = set(g.throttle_reasons)
            for reason in REASONS:
                w.gauge(THROTTLE, label_block({**ident, "reason": reason}), 1.0 if reason in active else 0.0)
        w.counter(ECC_CORRECTED, base, g.ecc_corrected_total)
        w.counter(ECC_UNCORRECTED, base, g.ecc_uncorrected_total)
        w.gauge(PCIE_TX, base, g.pcie_tx_bytes_per_second)
        w.gauge(PCIE_RX, base, g.pcie_rx_bytes_per_second)
        for field in g.unsupported:
            w.gauge(UNSUPPORTED, label_block({**ident, "field": field}), 1.0)
        for p in g.processes:
            w.gauge(
                PROC_MEM,
                label_block({**ident, "pid": str(p.pid), "container_id": p.container_id[:12], "kind": p.kind}),
                p.used_memory_bytes,
            )


RENDERERS = renderer_for(GpuHostSnapshot, render_gpu_host)
