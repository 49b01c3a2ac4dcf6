"""Stand-ins for the service context epp-scraper uses outside a running service, and token files."""

from __future__ import annotations

import os
from pathlib import Path


class ScraperContext:
    """The few ServiceContext attributes EppScraper uses outside a running service."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry

        self.registry = CollectorRegistry()
        self.instance = "epp-scraper@test"


class RecordingBus:
    """Collects what the scraper publishes."""

    def __init__(self) -> None:
        self.published: list[object] = []

    async def publish(self, event: object) -> None:
        self.published.append(event)


class BusScraperContext(ScraperContext):
    """A ScraperContext whose bus records what is published."""

    def __init__(self) -> None:
        super().__init__()
        self.bus = RecordingBus()


def write_token(path: Path, token: str) -> None:
    """Replace the token file the way kubelet rotates a projected token."""
    tmp = path.with_suffix(".new")
    tmp.write_text(token + "\n")
    os.replace(tmp, path)  # kubelet swaps the file atomically (new inode)
