"""Scrape targets found and lost (by docker-watcher, DNS, static configuration)."""

from __future__ import annotations

from typing import Literal

import msgspec

from inferwatch.contracts.base import Occurrence, Snapshot

# Which scraper takes a target.
TargetKind = Literal["vllm", "epp", "litellm"]


class ScrapeTarget(msgspec.Struct, frozen=True, kw_only=True):
    """Something a scraper should read.

    Attributes:
        kind: which scraper takes it (``vllm``, ``epp``, ``litellm``).
        url: base URL (``http://10.0.0.5:8000``); paths are the scraper's business.
        container_id: the container serving it, when known (joins series to containers).
        container_name: that container's name.
        gpus: GPU indexes or UUIDs assigned to that container (``["all"]`` for ``--gpus all``).
        version: the server's version as discovery saw it (image tag or label), ``""`` if unknown;
            the scraper prefers what the server itself reports.
        labels: extra bounded labels to attach (``model``, ``host``).
    """

    kind: TargetKind
    url: str
    container_id: str = ""
    container_name: str = ""
    gpus: list[str] = []
    version: str = ""
    labels: dict[str, str] = {}


class TargetFound(Occurrence, frozen=True, kw_only=True, tag="discovery.found"):
    """A target appeared. ``source`` is the discoverer's key for it (the container id, the DNS name)."""

    target: ScrapeTarget


class TargetLost(Occurrence, frozen=True, kw_only=True, tag="discovery.lost"):
    """A target went away (container stopped, DNS record removed)."""

    target: ScrapeTarget
    reason: str = ""


class TargetSet(Snapshot, frozen=True, kw_only=True, tag="discovery.targets"):
    """The discoverer's whole current target set (lets a restarted scraper catch up at once)."""

    targets: list[ScrapeTarget]
