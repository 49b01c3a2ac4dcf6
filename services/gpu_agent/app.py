"""gpu-agent's I/O edges: poll NVML each interval, publish one ``GpuHostSnapshot``."""

from __future__ import annotations

import asyncio
import logging
import time

from prometheus_client import Gauge

from inferwatch.contracts.gpu import GpuHostSnapshot
from inferwatch.services.gpu_agent.config import GpuAgentConfig
from inferwatch.services.gpu_agent.core import container_id_from_cgroup
from inferwatch.services.gpu_agent.nvml import Nvml, NvmlReader, load_binding
from inferwatch.shared.loop import run_every
from inferwatch.shared.service import ServiceContext
from inferwatch.shared.settings import Env

log = logging.getLogger("inferwatch.gpu_agent")


def make_reader(config: GpuAgentConfig, env: Env) -> NvmlReader:
    """The reader over pynvml, or over the binding ``INFERWATCH_GPU_NVML`` names (``module:factory``).

    A binding that can also say which cgroup a PID is in (``cgroup_text(pid)``, as the fake does) is asked
    instead of ``/proc``.

    Raises:
        SettingsError: ``INFERWATCH_GPU_NVML`` does not name a callable.
    """
    if config.nvml:
        nvml = load_binding(config.nvml, env)
        cgroup_text = getattr(nvml, "cgroup_text", None)
        if callable(cgroup_text):
            return NvmlReader(nvml, container_of=lambda pid: container_id_from_cgroup(cgroup_text(pid)))
        return NvmlReader(nvml, proc_root=config.proc_root)
    import pynvml  # type: ignore[import-untyped]

    binding: Nvml = pynvml  # the module has exactly the protocol's functions
    return NvmlReader(binding, proc_root=config.proc_root)


def snapshot(reader: NvmlReader, config: GpuAgentConfig, collector: str) -> GpuHostSnapshot:
    """Read every GPU once and build the host snapshot (NVML absent: ``nvml_available=False`` with the reason)."""
    gpus = reader.read()
    driver, cuda, nvml_version = reader.host if reader.available else ("", "", "")
    return GpuHostSnapshot(
        source=config.host,
        observed_at=time.time(),
        collector=collector,
        interval_s=config.interval_s,
        nvml_available=reader.available,
        error=reader.error,
        driver_version=driver,
        cuda_driver_version=cuda,
        nvml_version=nvml_version,
        gpus=gpus,
    )


async def run(ctx: ServiceContext, config: GpuAgentConfig, reader: NvmlReader | None = None) -> None:
    """Poll until stopped. Without NVML the agent keeps running: ``/readyz`` says why, and it retries."""
    reader = reader or make_reader(config, ctx.env)
    available = Gauge(
        "inferwatch_gpu_nvml_available", "1 when NVML could be initialised on this host.", registry=ctx.registry
    )
    duration = Gauge("inferwatch_gpu_poll_duration_seconds", "Duration of the last NVML poll.", registry=ctx.registry)
    reported: set[str] = set()

    async def cycle() -> None:
        started = time.perf_counter()
        snap = await asyncio.to_thread(snapshot, reader, config, ctx.instance)
        duration.set(time.perf_counter() - started)
        available.set(1.0 if snap.nvml_available else 0.0)
        ctx.targets = len(snap.gpus)
        if snap.nvml_available:
            ctx.set_ready(True, "")
        else:
            ctx.set_ready(
                False,
                f"NVML unavailable: {snap.error} (no NVIDIA driver or libnvidia-ml on this "
                "host; the agent keeps retrying)",
            )
        for gpu in snap.gpus:
            for field in gpu.unsupported:
                key = f"{gpu.uuid}/{field}"
                if key not in reported:
                    reported.add(key)
                    log.info("unsupported field skipped", extra={"gpu": gpu.index, "field": field})
        await ctx.bus.publish(snap)

    try:
        await run_every(config.interval_s, cycle, ctx.sleep)
    finally:
        await asyncio.to_thread(reader.shutdown)
