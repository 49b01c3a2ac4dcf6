"""``python -m services.gpu_agent``: poll this host's GPUs through NVML, publish host snapshots."""

from __future__ import annotations

from services.gpu_agent.app import run
from services.gpu_agent.config import DEFAULT_PORT, GpuAgentConfig
from shared.service import ServiceContext, main_entry


async def main(ctx: ServiceContext) -> None:
    """Run until stopped."""
    await run(ctx, GpuAgentConfig.from_env(ctx.env))


if __name__ == "__main__":
    main_entry("gpu-agent", main, default_port=DEFAULT_PORT)
