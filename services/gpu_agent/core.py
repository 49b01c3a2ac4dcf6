"""Pure functions of the gpu-agent: NVML raw readings → ``contracts.gpu``, cgroup files → container ids."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from inferwatch.contracts.gpu import THROTTLE_REASONS, GpuProcess, GpuProcessKind, GpuReading

MIB = 1024 * 1024

# A 64-hex container id as the last element of a cgroup path, in every runtime's spelling:
# Docker v1 ``/docker/<id>``, Docker v2 ``/system.slice/docker-<id>.scope``, containerd
# ``cri-containerd-<id>.scope``, CRI-O ``crio-<id>.scope``, Podman ``libpod-<id>.scope``,
# Kubernetes v1 ``/kubepods/burstable/pod<uid>/<id>``.
_CONTAINER_ID = re.compile(r"(?:^|[/\-:])([0-9a-f]{64})(?:\.scope)?(?=/|$)")
_POD_UID = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")


def throttle_reason_names(mask: int) -> list[str]:
    """Names of the throttle reasons set in an NVML clocks-throttle bitmask (unknown bits as ``bit_<n>``)."""
    names = [name for bit, name in THROTTLE_REASONS if mask & bit]
    known = 0
    for bit, _ in THROTTLE_REASONS:
        known |= bit
    rest = mask & ~known
    n = 0
    while rest:
        if rest & 1:
            names.append(f"bit_{n}")
        rest >>= 1
        n += 1
    return names


def container_id_from_cgroup(text: str) -> str:
    """The container id in a ``/proc/<pid>/cgroup`` file (cgroup v1 or v2), ``""`` outside a container.

    Each line is ``hierarchy:controllers:path``; the v2 line is ``0::path``. The id is the last 64-hex
    path element of any line (the same on every v1 line).
    """
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        matches = _CONTAINER_ID.findall(parts[2])
        if matches:
            return str(matches[-1])
    return ""


def pod_uid_from_cgroup(text: str) -> str:
    """The Kubernetes pod UID in a cgroup file (``-`` form), ``""`` if the process is not in a pod."""
    match = _POD_UID.search(text)
    return match.group(1).replace("_", "-") if match else ""


def cuda_version_string(version: int) -> str:
    """NVML's CUDA driver version integer (``12040``) as ``12.4``."""
    if version <= 0:
        return ""
    return f"{version // 1000}.{(version % 1000) // 10}"


def text(value: Any) -> str:
    """NVML strings come as ``bytes`` in old bindings and ``str`` in new ones."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _ratio(percent: Any) -> float | None:
    return None if percent is None else float(percent) / 100.0


def _scaled(value: Any, factor: float) -> float | None:
    return None if value is None else float(value) * factor


def gpu_reading(
    index: int,
    uuid: str,
    name: str,
    raw: Mapping[str, Any],
    processes: list[GpuProcess],
    unsupported: list[str] | None = None,
    error: str = "",
) -> GpuReading:
    """One ``GpuReading`` from raw NVML values, normalised to base units.

    ``raw`` keys (absent: not supported or failed): ``utilization`` (object with ``gpu``/``memory`` in %),
    ``memory`` (``used``/``free``/``total`` bytes), ``temperature`` (°C), ``power_usage`` and ``power_limit``
    (mW), ``sm_clock`` and ``mem_clock`` (MHz), ``fan`` (%), ``throttle`` (bitmask), ``ecc_corrected`` and
    ``ecc_uncorrected`` (counts), ``pcie_tx`` and ``pcie_rx`` (KB/s).
    """
    util = raw.get("utilization")
    mem = raw.get("memory")
    throttle = raw.get("throttle")
    return GpuReading(
        index=index,
        uuid=uuid,
        name=name,
        utilization_ratio=_ratio(getattr(util, "gpu", None)),
        memory_utilization_ratio=_ratio(getattr(util, "memory", None)),
        memory_used_bytes=_scaled(getattr(mem, "used", None), 1.0),
        memory_free_bytes=_scaled(getattr(mem, "free", None), 1.0),
        memory_total_bytes=_scaled(getattr(mem, "total", None), 1.0),
        temperature_celsius=_scaled(raw.get("temperature"), 1.0),
        power_draw_watts=_scaled(raw.get("power_usage"), 1e-3),
        power_limit_watts=_scaled(raw.get("power_limit"), 1e-3),
        sm_clock_hertz=_scaled(raw.get("sm_clock"), 1e6),
        memory_clock_hertz=_scaled(raw.get("mem_clock"), 1e6),
        fan_speed_ratio=_ratio(raw.get("fan")),
        throttle_reasons=throttle_reason_names(int(throttle)) if throttle is not None else [],
        ecc_corrected_total=_scaled(raw.get("ecc_corrected"), 1.0),
        ecc_uncorrected_total=_scaled(raw.get("ecc_uncorrected"), 1.0),
        pcie_tx_bytes_per_second=_scaled(raw.get("pcie_tx"), 1024.0),
        pcie_rx_bytes_per_second=_scaled(raw.get("pcie_rx"), 1024.0),
        processes=processes,
        unsupported=sorted(unsupported or []),
        error=error,
    )


def gpu_processes(compute: list[Any], graphics: list[Any], containers: Mapping[int, str]) -> list[GpuProcess]:
    """NVML process infos (``pid``, ``usedGpuMemory`` bytes or None) → ``GpuProcess`` list, one per PID.

    A PID in both lists is ``compute``; ``containers`` maps PIDs to container ids.
    """
    seen: dict[int, GpuProcess] = {}
    lists: tuple[tuple[GpuProcessKind, list[Any]], ...] = (("compute", compute), ("graphics", graphics))
    for kind, infos in lists:
        for info in infos:
            pid = int(info.pid)
            if pid in seen:
                continue
            used = getattr(info, "usedGpuMemory", None)
            seen[pid] = GpuProcess(
                pid=pid,
                used_memory_bytes=float(used) if used is not None else 0.0,
                container_id=containers.get(pid, ""),
                kind=kind,
            )
    return sorted(seen.values(), key=lambda p: p.pid)
