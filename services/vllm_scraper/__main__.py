"""``python -m services.vllm_scraper``: scrape vLLM instances, publish snapshots."""

from __future__ import annotations

from services.vllm_scraper.app import run
from services.vllm_scraper.config import DEFAULT_PORT, VllmScraperConfig
from shared.service import ServiceContext, main_entry


async def main(ctx: ServiceContext) -> None:
    """Run until stopped."""
    await run(ctx, VllmScraperConfig.from_env(ctx.env))


if __name__ == "__main__":
    main_entry("vllm-scraper", main, default_port=DEFAULT_PORT)
