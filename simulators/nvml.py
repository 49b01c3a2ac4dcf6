"""A fake NVML implementing ``services.gpu_agent.nvml.Nvml``: several GPUs, processes in containers, scenarios.

The gpu-agent loads it through its binding seam: ``INFERWATCH_GPU_NVML=inferwatch.simulators.nvml:from_env``
with ``INFERWATCH_SIM_NVML=<gpus>[:<scenario>]`` (default ``4``) and optionally
``INFERWATCH_SIM_NVML_SCENARIO_FILE``.

Scenarios: ``normal``; ``memory_pressure`` (GPU 0 nearly full); ``thermal`` (GPU 1 hot, thermal throttling);
``hot`` (GPU 1 at 90 °C, not throttling yet); ``power_throttle`` (GPU 3 capped by the software power limit);
``xid`` (GPU 2 falls off the bus, as after an XID 79: every call on it raises ``GPU_IS_LOST``).
With a ``scenario_file`` (``INFERWATCH_SIM_NVML_SCENARIO_FILE``), the fake re-reads that file
whenever it changes: one scenario name per line, applied over the starting scenario (an empty or missing file
restores it). The demo's scenario control API writes it.
``unsupported`` fields raise ``NOT_SUPPORTED`` (as fans on passively cooled data-centre GPUs do);
``library_missing`` makes ``nvmlInit`` raise ``LIBRARY_NOT_FOUND``; ``reload_driver()`` makes the next call
raise ``UNINITIALIZED`` until ``nvmlInit`` runs again.
"""

from __future__ import annotations

import copy
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pynvml  # type: ignore[import-untyped]

from inferwatch.shared.settings import Env
from inferwatch.simulators.demo import Demo

GIB = 1024**3
SCENARIOS = ("normal", "memory_pressure", "thermal", "hot", "power_throttle", "xid")
# The containers of ``simulators/docker_engine.py``'s demo host, by GPU (same deterministic ids), so that the
# demo's GPU-process → container join finds the vLLM containers.
DEMO_CONTAINERS = ("vllm-qwen3", "vllm-qwen3", "vllm-llama31", "vllm-mistral")
# The demo's example prices for the unit economics per model (the product default is none).
DEMO_ECONOMICS_FILE = Path(__file__).parent / "economics-demo.yaml"


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


BINDING = "inferwatch.simulators.nvml:from_env"


def from_env(env: Env) -> FakeNvml:
    """The fake the gpu-agent's ``INFERWATCH_GPU_NVML`` names: ``INFERWATCH_SIM_NVML=<gpus>[:<scenario>]``."""
    count, _, scenario = env.get("INFERWATCH_SIM_NVML", "4").partition(":")
    return FakeNvml(
        gpus=int(count or 4), scenario=scenario or "normal", scenario_file=env.get("INFERWATCH_SIM_NVML_SCENARIO_FILE")
    )


class FakeNvml:
    """The pynvml functions the agent uses, over ``gpus``; raise pynvml's real exception classes."""

    def __init__(
        self, gpus: int = 4, scenario: str = "normal", library_missing: bool = False, scenario_file: str = ""
    ) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown NVML scenario {scenario!r}; one of {', '.join(SCENARIOS)}")
        self.library_missing = library_missing
        self.initialised = False
        self.calls = 0
        self.gpus = [FakeGpu(index=i) for i in range(gpus)]
        for i, gpu in enumerate(self.gpus):
            used = int((40 + 31 * (i % 2)) * GIB)
            gpu.used = used
            gpu.processes = [
                FakeProcess(
                    pid=1000 + i,
                    usedGpuMemory=used - GIB,
                    container=DEMO_CONTAINERS[i % len(DEMO_CONTAINERS)],
                    cgroup_version=2 if i % 2 == 0 else 1,
                )
            ]
        self.apply(scenario)
        self.scenario_file = scenario_file
        self._baseline = copy.deepcopy(self.gpus)
        self._file_stamp: tuple[int, int] | None = None

    def refresh(self) -> None:
        """Apply the scenario file's scenarios over the starting state if the file changed since the last call."""
        if not self.scenario_file:
            return
        try:
            st = os.stat(self.scenario_file)
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp == self._file_stamp:
            return
        self._file_stamp = stamp
        names: list[str] = []
        if stamp is not None:
            try:
                with open(self.scenario_file, encoding="utf-8") as f:
                    names = [line.strip() for line in f if line.strip() in SCENARIOS]
            except OSError:
                names = []
        for gpu, base in zip(self.gpus, self._baseline, strict=True):  # in place: the agent holds the handles
            gpu.__dict__.update(copy.deepcopy(base).__dict__)
        for name in names:
            self.apply(name)

    def apply(self, scenario: str) -> None:
        """Put the GPUs into a scenario (see the module docstring)."""
        if scenario == "memory_pressure" and self.gpus:
            g = self.gpus[0]
            g.used, g.mem_util = g.total - GIB // 2, 98
            g.processes[0].usedGpuMemory = g.used - GIB
        elif scenario == "thermal" and len(self.gpus) > 1:
            g = self.gpus[1]
            g.temperature, g.sm_mhz, g.throttle = 92, 1200, 0x20 | 0x40
        elif scenario == "hot" and len(self.gpus) > 1:
            self.gpus[1].temperature = 90
        elif scenario == "power_throttle" and len(self.gpus) > 3:
            g = self.gpus[3]
            g.power_mw, g.sm_mhz, g.throttle = g.power_limit_mw, 1410, 0x04
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
        self.refresh()
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
    """``inferwatch up --demo``: point the gpu-agent at a fake NVML with four GPUs, switchable by scenarios."""
    import tempfile

    from inferwatch.simulators.scenarios import Scenario

    tmpdir = tempfile.mkdtemp(prefix="inferwatch-nvml-")
    path = os.path.join(tmpdir, "scenarios")
    active: list[str] = []

    def write() -> None:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("".join(name + "\n" for name in active))
        os.replace(tmp, path)  # the agent never reads half a file

    def switch(name: str, on: bool) -> None:
        if on and name not in active:
            active.append(name)
        elif not on and name in active:
            active.remove(name)
        write()

    def scenario(name: str, alert: str, fake: str, gpu: int, description: str) -> Scenario:
        return Scenario(
            name, alert, description, lambda: switch(fake, True), lambda: switch(fake, False), labels={"gpu": str(gpu)}
        )

    write()

    def cleanup() -> None:
        for leftover in (path, path + ".tmp"):
            if os.path.exists(leftover):
                os.unlink(leftover)
        os.rmdir(tmpdir)

    return Demo(
        env={
            "INFERWATCH_GPU_NVML": BINDING,
            "INFERWATCH_SIM_NVML": "4",
            "INFERWATCH_SIM_NVML_SCENARIO_FILE": path,
            # example GPU-hour and kWh prices for these fake H100s, so the demo shows cost per million tokens
            "INFERWATCH_AGGREGATOR_ECONOMICS_FILE": str(DEMO_ECONOMICS_FILE),
        },
        scenarios=[
            scenario("gpu_temperature_high", "GpuTemperatureHigh", "hot", 1, "GPU 1 runs at 90 °C"),
            scenario(
                "gpu_memory_near_full",
                "GpuMemoryNearFull",
                "memory_pressure",
                0,
                "GPU 0's memory is 79.5 of 80 GiB used",
            ),
            scenario(
                "gpu_throttling",
                "GpuThrottling",
                "power_throttle",
                3,
                "GPU 3's clocks are capped by the software power limit",
            ),
        ],
        cleanup=[cleanup],
    )
