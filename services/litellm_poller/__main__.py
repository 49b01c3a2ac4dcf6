"""``python -m services.litellm_poller``: poll LiteLLM proxies, publish snapshots."""

from __future__ import annotations

from services.litellm_poller.app import run
from services.litellm_poller.config import DEFAULT_PORT, LitellmPollerConfig
from shared.service import ServiceContext, main_entry


async def main(ctx: ServiceContext) -> None:
    """Run until stopped."""
    await run(ctx, LitellmPollerConfig.from_env(ctx.env))


if __name__ == "__main__":
    main_entry("litellm-poller", main, default_port=DEFAULT_PORT)
