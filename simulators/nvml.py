"""A fake NVML implementing ``services.gpu_agent.nvml.Nvml``: several GPUs, processes in containers, scenarios.

Scenarios: ``normal``; ``memory_pressure`` (GPU 0 nearly full); ``thermal`` (GPU 1 hot, thermal throttling);
``xid`` (GPU 2 falls off the bus, as after an XID 79: every call on it raises ``GPU_IS_LOST``).
``unsupported`` fields raise ``NOT_SUPPORTED`` (as fans on passively cooled data-centre GPUs do);
``library_missing`` makes ``nvmlInit`` raise ``LIBRARY_NOT_FOUND``; ``reload_driver()`` makes the next call
raise ``UNINITIALIZED`` until ``nvmlInit`` runs again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pynvml  # type: ignore[import-untyped]

from simulators.demo import Demo

GIB = 1024**3
SCENARIOS = ("normal", "memory_pressure", "thermal", "xid")
# The containers of ``simulators/docker_engine.py``'s demo host, by GPU (same deterministic ids), so that the
# demo's GPU-process → container join finds the vLLM containers.
DEMO_CONTAINERS = ("vllm-qwen3", "vllm-qwen3", "vllm-llama31", "vllm-mistral")


def container_id_for(name: str) -> str:
    """A stable 64-hex container id for a simulated container name (as ``simulators.docker_engine``'s)."""
    return hashlib.sha256(name.encode()).hexdigest()


@dataclass
class FakeProcess:
    """A process on a fake GPU."""

    pid: int
    usedGpuMemory: int | None  # noqa: N815 - pynvml's attribute name
    container: str = ""  # container name; "" for a host process
    cgroup_version: int = 2


@dataclass
class FakeGpu:
    """One fake GPU's state (NVML units: %, bytes, mW, MHz)."""

    index: int
    name: str = "NVIDIA H100 80GB HBM3"
    total: int = 80 * GIB
    used: int = 0
    util: int = 40
    mem_util: int = 30
    temperature: int = 55
    power_mw: int = 350_000
    power_limit_mw: int = 700_000
    sm_mhz: int = 1980
    mem_mhz: int = 2619
    fan: int = 0
    throttle: int = 0
    ecc_corrected: int = 0
    ecc_uncorrected: int = 0
    lost: bool = False
    unsupported: set[str] = field(default_factory=lambda: {"nvmlDeviceGetFanSpeed"})
    processes: list[FakeProcess] = field(default_factory=list)

    @property
    def uuid(self) -> str:
        """A GPU-… UUID stable per index."""
        h = hashlib.md5(f"gpu{self.index}".encode()).hexdigest()
        return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


class _Util:
    def __init__(self, gpu: int, memory: int) -> None:
        self.gpu, self.memory = gpu, memory


class _Mem:
    def __init__(self, total: int, used: int) -> None:
        self.total, self.used, self.free = total, used, total - used


def _err(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


class FakeNvml:
    """The pynvml functions the agent uses, over ``gpus``; raise pynvml's real exception classes."""

    def __init__(self, gpus: int = 4, scenario: str = "normal", library_missing: bool = False) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown NVML scenario {scenario!r}; one of {', '.join(SCENARIOS)}")
        self.library_missing = library_missing
        self.initialised = False
        self.calls = 0
        self.gpus = [FakeGpu(index=i) for i in range(gpus)]
        for i, gpu in enumerate(self.gpus):
            used = int((40 + 31 * (i % 2)) * GIB)
            gpu.used = used
            gpu.processes = [FakeProcess(pid=1000 + i, usedGpuMemory=used - GIB,
                                         container=DEMO_CONTAINERS[i % len(DEMO_CONTAINERS)],
                                         cgroup_version=2 if i % 2 == 0 else 1)]
        self.apply(scenario)

    def apply(self, scenario: str) -> None:
        """Put the GPUs into a scenario (see the module docstring)."""
        if scenario == "memory_pressure" and self.gpus:
            g = self.gpus[0]
            g.used, g.mem_util = g.total - GIB // 2, 98
            g.processes[0].usedGpuMemory = g.used - GIB
        elif scenario == "thermal" and len(self.gpus) > 1:
            g = self.gpus[1]
            g.temperature, g.sm_mhz, g.throttle = 92, 1200, 0x20 | 0x40
        elif scenario == "xid" and len(self.gpus) > 2:
            self.gpus[2].lost = True

    def cgroup_text(self, pid: int) -> str:
        """The ``/proc/<pid>/cgroup`` content the fake processes would have (v1 or v2, Docker)."""
        for gpu in self.gpus:
            for proc in gpu.processes:
                if proc.pid == pid and proc.container:
                    cid = container_id_for(proc.container)
                    if proc.cgroup_version == 2:
                        return f"0::/system.slice/docker-{cid}.scope\n"
                    return f"12:memory:/docker/{cid}\n11:devices:/docker/{cid}\n1:name=systemd:/docker/{cid}\n"
        return "0::/user.slice/user-1000.slice/session-1.scope\n"

    def reload_driver(self) -> None:
        """Simulate a driver reload: handles become invalid until the next ``nvmlInit``."""
        self.initialised = False

    # ---- the protocol -------------------------------------------------------------------------

    def _gpu(self, handle: Any, fn: str) -> FakeGpu:
        self.calls += 1
        if not self.initialised:
            raise _err(pynvml.NVML_ERROR_UNINITIALIZED)
        gpu: FakeGpu = handle
        if gpu.lost:
            raise _err(pynvml.NVML_ERROR_GPU_IS_LOST)
        if fn in gpu.unsupported:
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu

    def nvmlInit(self) -> None:  # noqa: N802
        if self.library_missing:
            raise _err(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
        self.initialised = True

    def nvmlShutdown(self) -> None:  # noqa: N802
        self.initialised = False

    def _system(self) -> None:
        if not self.initialised:
            raise _err(pynvml.NVML_ERROR_UNINITIALIZED)

    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802
        self._system()
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion(self) -> int:  # noqa: N802
        self._system()
        return 12040

    def nvmlSystemGetNVMLVersion(self) -> str:  # noqa: N802
        self._system()
        return "12.550.54.15"

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        self._system()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:  # noqa: N802
        self._system()
        return self.gpus[index]

    def nvmlDeviceGetUUID(self, handle: Any) -> str:  # noqa: N802
        return self._gpu(handle, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetName(self, handle: Any) -> str:  # noqa: N802
        return self._gpu(handle, "nvmlDeviceGetName").name

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:  # noqa: N802
        g = self._gpu(handle, "nvmlDeviceGetUtilizationRates")
        return _Util(g.util, g.mem_util)

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any:  # noqa: N802
        g = self._gpu(handle, "nvmlDeviceGetMemoryInfo")
        return _Mem(g.total, g.used)

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:  # noqa: N802
        return self._gpu(handle, "nvmlDeviceGetTemperature").temperature

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:  # noqa: N802
        return self._gpu(handle, "nvmlDeviceGetPowerUsage").power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:  # noqa: N802
        return self._gpu(handle, "nvmlDeviceGetEnforcedPowerLimit").power_limit_mw

    def nvmlDeviceGetClockInfo(self, handle: Any, clock: int) -> int:  # noqa: N802
        g = self._gpu(handle, "nvmlDeviceGetClockInfo")
        return g.sm_mhz if clock == pynvml.NVML_CLOCK_SM else g.mem_mhz

    def nvmlDeviceGetFanSpeed(self, handle: Any) -> int:  # noqa: N802
        return self._gpu(handle, "nvmlDeviceGetFanSpeed").fan

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: Any) -> int:  # noqa: N802
        return self._gpu(handle, "nvmlDeviceGetCurrentClocksThrottleReasons").throttle

    def nvmlDeviceGetTotalEccErrors(self, handle: Any, error_type: int, counter_type: int) -> int:  # noqa: N802
        g = self._gpu(handle, "nvmlDeviceGetTotalEccErrors")
        return g.ecc_corrected if error_type == pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED else g.ecc_uncorrected

    def nvmlDeviceGetPcieThroughput(self, handle: Any, counter: int) -> int:  # noqa: N802
        self._gpu(handle, "nvmlDeviceGetPcieThroughput")
        return 1200 if counter == pynvml.NVML_PCIE_UTIL_TX_BYTES else 3400

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[Any]:  # noqa: N802
        return list(self._gpu(handle, "nvmlDeviceGetComputeRunningProcesses").processes)

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: Any) -> list[Any]:  # noqa: N802
        self._gpu(handle, "nvmlDeviceGetGraphicsRunningProcesses")
        return []


async def start_demo() -> Demo:
    """``inferwatch up --demo``: point the gpu-agent at a fake NVML with four GPUs."""
    return Demo(env={"INFERWATCH_GPU_FAKE": "4"})
