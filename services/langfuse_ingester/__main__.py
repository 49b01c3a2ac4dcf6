"""``python -m services.langfuse_ingester``: exact, incremental Langfuse analytics, published as snapshots."""

from __future__ import annotations

from services.langfuse_ingester.app import run
from services.langfuse_ingester.config import DEFAULT_PORT, LangfuseIngesterConfig
from shared.service import ServiceContext, main_entry


async def main(ctx: ServiceContext) -> None:
    """Run until stopped."""
    await run(ctx, LangfuseIngesterConfig.from_env(ctx.env))


if __name__ == "__main__":
    main_entry("langfuse-ingester", main, default_port=DEFAULT_PORT)
