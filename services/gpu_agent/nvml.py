"""NVML access: a small protocol over the pynvml calls the agent uses, and the reader that polls through it.

The real adapter is the ``pynvml`` module (nvidia-ml-py) itself: it has exactly these functions. The fake
(``simulators/nvml.py``, named by ``INFERWATCH_GPU_NVML``) implements the same protocol and raises pynvml's
own exception classes.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import Callable
from typing import Any, Protocol

import pynvml  # type: ignore[import-untyped]

from inferwatch.contracts.gpu import GpuReading
from inferwatch.services.gpu_agent.core import (
    container_id_from_cgroup,
    cuda_version_string,
    gpu_processes,
    gpu_reading,
    text,
)
from inferwatch.shared.settings import Env, SettingsError

log = logging.getLogger("inferwatch.gpu_agent")


class Nvml(Protocol):
    """The pynvml functions the agent calls (names and signatures as in nvidia-ml-py)."""

    def nvmlInit(self) -> None: ...  # noqa: N802
    def nvmlShutdown(self) -> None: ...  # noqa: N802
    def nvmlSystemGetDriverVersion(self) -> str | bytes: ...  # noqa: N802
    def nvmlSystemGetCudaDriverVersion(self) -> int: ...  # noqa: N802
    def nvmlSystemGetNVMLVersion(self) -> str | bytes: ...  # noqa: N802
    def nvmlDeviceGetCount(self) -> int: ...  # noqa: N802
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...  # noqa: N802
    def nvmlDeviceGetUUID(self, handle: Any) -> str | bytes: ...  # noqa: N802
    def nvmlDeviceGetName(self, handle: Any) -> str | bytes: ...  # noqa: N802
    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any: ...  # noqa: N802
    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any: ...  # noqa: N802
    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int: ...  # noqa: N802
    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int: ...  # noqa: N802
    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int: ...  # noqa: N802
    def nvmlDeviceGetClockInfo(self, handle: Any, clock: int) -> int: ...  # noqa: N802
    def nvmlDeviceGetFanSpeed(self, handle: Any) -> int: ...  # noqa: N802
    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: Any) -> int: ...  # noqa: N802
    def nvmlDeviceGetTotalEccErrors(self, handle: Any, error_type: int, counter_type: int) -> int: ...  # noqa: N802
    def nvmlDeviceGetPcieThroughput(self, handle: Any, counter: int) -> int: ...  # noqa: N802
    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[Any]: ...  # noqa: N802
    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: Any) -> list[Any]: ...  # noqa: N802


# field → (function name, extra args) read per GPU; each may be unsupported on some GPUs.
FIELDS: dict[str, tuple[str, tuple[int, ...]]] = {
    "utilization": ("nvmlDeviceGetUtilizationRates", ()),
    "memory": ("nvmlDeviceGetMemoryInfo", ()),
    "temperature": ("nvmlDeviceGetTemperature", (pynvml.NVML_TEMPERATURE_GPU,)),
    "power_usage": ("nvmlDeviceGetPowerUsage", ()),
    "power_limit": ("nvmlDeviceGetEnforcedPowerLimit", ()),
    "sm_clock": ("nvmlDeviceGetClockInfo", (pynvml.NVML_CLOCK_SM,)),
    "mem_clock": ("nvmlDeviceGetClockInfo", (pynvml.NVML_CLOCK_MEM,)),
    "fan": ("nvmlDeviceGetFanSpeed", ()),
    "throttle": ("nvmlDeviceGetCurrentClocksThrottleReasons", ()),
    "ecc_corrected": (
        "nvmlDeviceGetTotalEccErrors",
        (pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, pynvml.NVML_AGGREGATE_ECC),
    ),
    "ecc_uncorrected": (
        "nvmlDeviceGetTotalEccErrors",
        (pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_AGGREGATE_ECC),
    ),
    "pcie_tx": ("nvmlDeviceGetPcieThroughput", (pynvml.NVML_PCIE_UTIL_TX_BYTES,)),
    "pcie_rx": ("nvmlDeviceGetPcieThroughput", (pynvml.NVML_PCIE_UTIL_RX_BYTES,)),
}

# Errors meaning "this GPU cannot do that": skip the field for this GPU from now on.
UNSUPPORTED = (pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
# Errors meaning "the driver went away or was reloaded": shut down and initialise again next cycle.
REINIT = (pynvml.NVML_ERROR_UNINITIALIZED, pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
GPU_LOST = (pynvml.NVML_ERROR_GPU_IS_LOST,)


def error_name(exc: pynvml.NVMLError) -> str:
    """A short stable name for an NVML error (``not_supported``, ``library_not_found``, ``code_<n>``)."""
    names = {
        pynvml.NVML_ERROR_LIBRARY_NOT_FOUND: "library_not_found",
        pynvml.NVML_ERROR_DRIVER_NOT_LOADED: "driver_not_loaded",
        pynvml.NVML_ERROR_NO_PERMISSION: "no_permission",
        pynvml.NVML_ERROR_NOT_SUPPORTED: "not_supported",
        pynvml.NVML_ERROR_FUNCTION_NOT_FOUND: "function_not_found",
        pynvml.NVML_ERROR_GPU_IS_LOST: "gpu_lost",
        pynvml.NVML_ERROR_UNINITIALIZED: "uninitialized",
    }
    return names.get(exc.value, f"code_{exc.value}")


def load_binding(target: str, env: Env) -> Nvml:
    """Call the factory ``target`` names (``package.module:function``) with ``env``: an NVML binding.

    Raises:
        SettingsError: ``target`` is not ``module:function``, or cannot be imported.
    """
    module_name, _, attr = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise SettingsError(f"INFERWATCH_GPU_NVML={target!r}: not an importable module:function ({exc})") from None
    if not callable(factory):
        raise SettingsError(f"INFERWATCH_GPU_NVML={target!r}: not callable")
    binding: Nvml = factory(env)
    return binding


def read_cgroup_container(proc_root: str, pid: int) -> str:
    """The container id of a host PID from ``<proc_root>/<pid>/cgroup``, ``""`` if none or unreadable."""
    try:
        with open(os.path.join(proc_root, str(pid), "cgroup"), encoding="utf-8", errors="replace") as f:
            return container_id_from_cgroup(f.read(65536))
    except OSError:
        return ""


class NvmlReader:
    """Polls NVML through ``nvml``: initialised once, handles cached, re-initialised after a driver reload.

    ``available`` is False (and ``error`` says why) when NVML cannot be initialised; the next ``read``
    tries again. Fields a GPU does not support are remembered in ``unsupported`` and never asked again.
    """

    def __init__(self, nvml: Nvml, proc_root: str = "/proc", container_of: Callable[[int], str] | None = None) -> None:
        self.nvml = nvml
        self.proc_root = proc_root
        self.container_of = container_of or (lambda pid: read_cgroup_container(self.proc_root, pid))
        self.initialised = False
        self.available = False
        self.error = "not initialised"
        self.handles: list[tuple[Any, str, str]] = []  # (handle, uuid, name) by index
        self.unsupported: dict[str, set[str]] = {}  # uuid -> fields the driver does not support
        self.host: tuple[str, str, str] = ("", "", "")
        self.init_count = 0
        self._pid_containers: dict[int, str] = {}

    def init(self) -> bool:
        """Initialise NVML and cache handles and host versions; False (with ``error``) if NVML is absent."""
        try:
            self.nvml.nvmlInit()
        except pynvml.NVMLError as exc:
            self.available, self.error = False, error_name(exc)
            return False
        self.init_count += 1
        self.initialised = True
        try:
            handles: list[tuple[Any, str, str]] = []
            for index in range(self.nvml.nvmlDeviceGetCount()):
                try:
                    handle = self.nvml.nvmlDeviceGetHandleByIndex(index)
                    handles.append(
                        (handle, text(self.nvml.nvmlDeviceGetUUID(handle)), text(self.nvml.nvmlDeviceGetName(handle)))
                    )
                except pynvml.NVMLError as exc:  # one broken GPU (fell off the bus) must not hide the others
                    if exc.value in REINIT:
                        raise
                    handles.append((None, "", error_name(exc)))
            self.handles = handles
            self.host = (
                self._host_string(self.nvml.nvmlSystemGetDriverVersion),
                cuda_version_string(self._host_int(self.nvml.nvmlSystemGetCudaDriverVersion)),
                self._host_string(self.nvml.nvmlSystemGetNVMLVersion),
            )
        except pynvml.NVMLError as exc:
            self.shutdown()
            self.available, self.error = False, error_name(exc)
            return False
        self.available, self.error = True, ""
        return True

    @staticmethod
    def _host_string(fn: Callable[[], str | bytes]) -> str:
        try:
            return text(fn())
        except pynvml.NVMLError:
            return ""

    @staticmethod
    def _host_int(fn: Callable[[], int]) -> int:
        try:
            return int(fn())
        except pynvml.NVMLError:
            return 0

    def shutdown(self) -> None:
        """Release NVML (handles are dropped)."""
        if self.initialised:
            with contextlib.suppress(pynvml.NVMLError):
                self.nvml.nvmlShutdown()
        self.initialised = False
        self.handles = []

    def read(self) -> list[GpuReading]:
        """One reading of every GPU (initialising NVML first if needed); ``[]`` when NVML is unavailable."""
        if not self.initialised and not self.init():
            return []
        readings: list[GpuReading] = []
        pids: set[int] = set()
        for index, (handle, uuid, name) in enumerate(self.handles):
            if handle is None:  # could not even get a handle at init: ``name`` holds the error
                readings.append(GpuReading(index=index, uuid="", name="", error=name))
                continue
            try:
                reading = self._read_gpu(index, handle, uuid, name)
            except pynvml.NVMLError as exc:
                if exc.value in REINIT:  # driver reloaded: handles are stale, start again next cycle
                    log.warning("NVML lost its driver; re-initialising", extra={"error": error_name(exc)})
                    self.shutdown()
                    self.available, self.error = False, error_name(exc)
                    return []
                reading = GpuReading(index=index, uuid=uuid, name=name, error=error_name(exc))
            pids.update(p.pid for p in reading.processes)
            readings.append(reading)
        for gone in set(self._pid_containers) - pids:
            del self._pid_containers[gone]
        return readings

    def _container(self, pid: int) -> str:
        cid = self._pid_containers.get(pid)
        if cid is None:
            cid = self._pid_containers[pid] = self.container_of(pid)
        return cid

    def _read_gpu(self, index: int, handle: Any, uuid: str, name: str) -> GpuReading:
        skip = self.unsupported.setdefault(uuid, set())
        raw: dict[str, Any] = {}
        nvml: Any = self.nvml
        for field, (fn_name, args) in FIELDS.items():
            if field in skip:
                continue
            try:
                raw[field] = getattr(nvml, fn_name)(handle, *args)
            except pynvml.NVMLError as exc:
                if exc.value in UNSUPPORTED:
                    skip.add(field)
                    log.info(
                        "field not supported on this GPU; not asked again",
                        extra={"gpu": index, "uuid": uuid, "field": field, "error": error_name(exc)},
                    )
                    continue
                if exc.value in REINIT or exc.value in GPU_LOST:
                    raise
                log.debug("NVML field read failed", extra={"gpu": index, "field": field})
        compute = self._processes(nvml, "nvmlDeviceGetComputeRunningProcesses", handle, skip, "compute_processes")
        graphics = self._processes(nvml, "nvmlDeviceGetGraphicsRunningProcesses", handle, skip, "graphics_processes")
        containers = {int(p.pid): self._container(int(p.pid)) for p in [*compute, *graphics]}
        return gpu_reading(index, uuid, name, raw, gpu_processes(compute, graphics, containers), sorted(skip))

    @staticmethod
    def _processes(nvml: Any, fn_name: str, handle: Any, skip: set[str], field: str) -> list[Any]:
        if field in skip:
            return []
        try:
            return list(getattr(nvml, fn_name)(handle))
        except pynvml.NVMLError as exc:
            if exc.value in UNSUPPORTED:
                skip.add(field)
                return []
            if exc.value in REINIT or exc.value in GPU_LOST:
                raise
            return []
