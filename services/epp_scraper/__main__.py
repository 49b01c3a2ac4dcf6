"""``python -m services.epp_scraper``: scrape llm-d EPP ``/metrics``, publish snapshots."""

from __future__ import annotations

from services.epp_scraper.app import run
from services.epp_scraper.config import DEFAULT_PORT, EppScraperConfig
from shared.service import ServiceContext, main_entry


async def main(ctx: ServiceContext) -> None:
    """Run until stopped."""
    await run(ctx, EppScraperConfig.from_env(ctx.env))


if __name__ == "__main__":
    main_entry("epp-scraper", main, default_port=DEFAULT_PORT)
