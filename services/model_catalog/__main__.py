"""``python -m services.model_catalog``: merge every model seen on the bus into one catalog, enrich it from HF."""

from __future__ import annotations

from services.model_catalog.app import run
from services.model_catalog.config import DEFAULT_PORT, ModelCatalogConfig
from shared.service import ServiceContext, main_entry


async def main(ctx: ServiceContext) -> None:
    """Run until stopped."""
    await run(ctx, ModelCatalogConfig.from_env(ctx.env))


if __name__ == "__main__":
    main_entry("model-catalog", main, default_port=DEFAULT_PORT)
