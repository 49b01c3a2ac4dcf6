"""Every event type the system carries, in one place (the decoder's tagged union and the schema)."""

from __future__ import annotations

from typing import Union

from contracts.alert import Alert
from contracts.base import Event
from contracts.catalog import ModelCatalogSnapshot
from contracts.discovery import TargetFound, TargetLost, TargetSet
from contracts.docker import ContainerLifecycle, ContainerLogSignature, DockerHostSnapshot
from contracts.epp import EppSnapshot
from contracts.gpu import GpuHostSnapshot
from contracts.heartbeat import Heartbeat
from contracts.langfuse import LangfuseProjectSnapshot
from contracts.litellm import LitellmProxySnapshot
from contracts.upstream import UpstreamCallStats
from contracts.vllm import VllmInstanceSnapshot, VllmModelLoaded

EVENT_TYPES: tuple[type[Event], ...] = (
    Heartbeat,
    UpstreamCallStats,
    DockerHostSnapshot,
    ContainerLifecycle,
    ContainerLogSignature,
    TargetFound,
    TargetLost,
    TargetSet,
    VllmInstanceSnapshot,
    VllmModelLoaded,
    EppSnapshot,
    LitellmProxySnapshot,
    LangfuseProjectSnapshot,
    GpuHostSnapshot,
    ModelCatalogSnapshot,
    Alert,
)

# The tagged union msgspec dispatches on (the ``type`` field).
AnyEvent = Union[*EVENT_TYPES]  # type: ignore[valid-type]
