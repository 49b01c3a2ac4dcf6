"""``python -m services.docker_watcher``: watch the Docker Engine, publish containers and vLLM targets."""

from __future__ import annotations

from services.docker_watcher.app import run
from services.docker_watcher.config import DEFAULT_PORT, DockerWatcherConfig
from shared.service import ServiceContext, main_entry


async def main(ctx: ServiceContext) -> None:
    """Run until stopped."""
    await run(ctx, DockerWatcherConfig.from_env(ctx.env))


if __name__ == "__main__":
    main_entry("docker-watcher", main, default_port=DEFAULT_PORT)
