"""GPU readings of one host from NVML, with GPU processes mapped to containers."""

from __future__ import annotations

from typing import Literal

import msgspec

from inferwatch.contracts.base import Snapshot

# The throttle-reason vocabulary of ``GpuReading.throttle_reasons``: NVML's clocks-throttle-reason bits
# (nvml.h ``nvmlClocksThrottleReason*`` / ``nvmlClocksEventReason*``) and the name each travels as.
# Unknown bits travel as ``bit_<n>``.
THROTTLE_REASONS: tuple[tuple[int, str], ...] = (
    (0x0001, "gpu_idle"),
    (0x0002, "applications_clocks_setting"),
    (0x0004, "sw_power_cap"),
    (0x0008, "hw_slowdown"),
    (0x0010, "sync_boost"),
    (0x0020, "sw_thermal_slowdown"),
    (0x0040, "hw_thermal_slowdown"),
    (0x0080, "hw_power_brake_slowdown"),
    (0x0100, "display_clock_setting"),
)

# NVML lists a GPU's compute and graphics processes apart.
GpuProcessKind = Literal["compute", "graphics"]


class GpuProcess(msgspec.Struct, frozen=True, kw_only=True):
    """A process using a GPU.

    Attributes:
        pid: host PID.
        used_memory_bytes: GPU memory used by it.
        container_id: container it runs in, ``""`` if none or unknown.
        kind: ``compute`` or ``graphics``.
    """

    pid: int
    used_memory_bytes: float
    container_id: str = ""
    kind: GpuProcessKind = "compute"


class GpuReading(msgspec.Struct, frozen=True, kw_only=True):
    """One GPU. ``None``: the driver does not support that field on this GPU.

    Attributes mirror NVML, normalised to base units (ratios 0..1, bytes, watts, Celsius, hertz).
    ``unsupported`` names the fields the driver does not support on this GPU; ``error`` is set when the
    GPU could not be read at all (``gpu_lost``: an XID-style failure, the GPU fell off the bus).
    """

    index: int
    uuid: str
    name: str
    utilization_ratio: float | None = None
    memory_utilization_ratio: float | None = None
    memory_used_bytes: float | None = None
    memory_free_bytes: float | None = None
    memory_total_bytes: float | None = None
    temperature_celsius: float | None = None
    power_draw_watts: float | None = None
    power_limit_watts: float | None = None
    sm_clock_hertz: float | None = None
    memory_clock_hertz: float | None = None
    fan_speed_ratio: float | None = None
    throttle_reasons: list[str] = []
    ecc_corrected_total: float | None = None
    ecc_uncorrected_total: float | None = None
    pcie_tx_bytes_per_second: float | None = None
    pcie_rx_bytes_per_second: float | None = None
    processes: list[GpuProcess] = []
    unsupported: list[str] = []
    error: str = ""


class GpuHostSnapshot(Snapshot, frozen=True, kw_only=True, tag="gpu.host"):
    """All GPUs of one host. ``source`` is the host name.

    Attributes:
        nvml_available: NVML could be initialised.
        error: why not.
        driver_version: NVIDIA driver version.
        cuda_driver_version: CUDA version the driver supports (``12.4``).
        nvml_version: NVML library version.
        gpus: one reading per GPU.
    """

    nvml_available: bool
    error: str = ""
    driver_version: str = ""
    cuda_driver_version: str = ""
    nvml_version: str = ""
    gpus: list[GpuReading] = []
