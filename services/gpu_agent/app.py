"""gpu-agent's I/O edges: poll NVML each interval, publish one ``GpuHostSnapshot``."""

from __future__ import annotations

import asyncio
import logging
import time

from prometheus_client import Gauge

from contracts.gpu import GpuHostSnapshot
from services.gpu_agent.config import GpuAgentConfig
from services.gpu_agent.core import container_id_from_cgroup
from services.gpu_agent.nvml import Nvml, NvmlReader
from shared.service import ServiceContext

log = logging.getLogger("inferwatch.gpu_agent")


def make_reader(config: GpuAgentConfig) -> NvmlReader:
    """The real pynvml reader, or the fake NVML when ``INFERWATCH_GPU_FAKE`` is set (``<count>[:<scenario>]``)."""
    if config.fake:
        from simulators.nvml import FakeNvml

        count, _, scenario = config.fake.partition(":")
        fake = FakeNvml(gpus=int(count or 4), scenario=scenario or "normal",
                        scenario_file=config.fake_scenario_file)
        return NvmlReader(fake, container_of=lambda pid: container_id_from_cgroup(fake.cgroup_text(pid)))
    import pynvml  # type: ignore[import-untyped]

    nvml: Nvml = pynvml  # the module has exactly the protocol's functions
    return NvmlReader(nvml, proc_root=config.proc_root)


def snapshot(reader: NvmlReader, config: GpuAgentConfig, collector: str) -> GpuHostSnapshot:
    """Read every GPU once and build the host snapshot (NVML absent: ``nvml_available=False`` with the reason)."""
    gpus = reader.read()
    driver, cuda, nvml_version = reader.host if reader.available else ("", "", "")
    return GpuHostSnapshot(
        source=config.host, observed_at=time.time(), collector=collector, interval_s=config.interval_s,
        nvml_available=reader.available, error=reader.error, driver_version=driver,
        cuda_driver_version=cuda, nvml_version=nvml_version, gpus=gpus,
    )


async def run(ctx: ServiceContext, config: GpuAgentConfig, reader: NvmlReader | None = None) -> None:
    """Poll until stopped. Without NVML the agent keeps running: ``/readyz`` says why, and it retries."""
    reader = reader or make_reader(config)
    available = Gauge("inferwatch_gpu_nvml_available", "1 when NVML could be initialised on this host.",
                      registry=ctx.registry)
    duration = Gauge("inferwatch_gpu_poll_duration_seconds", "Duration of the last NVML poll.",
                     registry=ctx.registry)
    reported: set[str] = set()
    try:
        while True:
            started = time.perf_counter()
            snap = await asyncio.to_thread(snapshot, reader, config, ctx.instance)
            duration.set(time.perf_counter() - started)
            available.set(1.0 if snap.nvml_available else 0.0)
            ctx.targets = len(snap.gpus)
            if snap.nvml_available:
                ctx.set_ready(True, "")
            else:
                ctx.set_ready(False, f"NVML unavailable: {snap.error} (no NVIDIA driver or libnvidia-ml on this "
                                     "host; the agent keeps retrying)")
            for gpu in snap.gpus:
                for field in gpu.unsupported:
                    key = f"{gpu.uuid}/{field}"
                    if key not in reported:
                        reported.add(key)
                        log.info("unsupported field skipped", extra={"gpu": gpu.index, "field": field})
            await ctx.bus.publish(snap)
            if await ctx.sleep(config.interval_s):
                return
    finally:
        await asyncio.to_thread(reader.shutdown)
