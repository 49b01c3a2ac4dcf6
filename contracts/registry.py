"""Every event type the system carries, in one place (the decoder's tagged union and the schema)."""

from __future__ import annotations

from typing import Union

from inferwatch.contracts.alert import Alert
from inferwatch.contracts.base import Event
from inferwatch.contracts.catalog import ModelCatalogSnapshot
from inferwatch.contracts.discovery import TargetFound, TargetLost, TargetSet
from inferwatch.contracts.docker import ContainerLifecycle, ContainerLogSignature, DockerHostSnapshot
from inferwatch.contracts.epp import EppSnapshot
from inferwatch.contracts.gpu import GpuHostSnapshot
from inferwatch.contracts.heartbeat import Heartbeat
from inferwatch.contracts.langfuse import LangfuseProjectSnapshot
from inferwatch.contracts.litellm import LitellmProxySnapshot
from inferwatch.contracts.supervisor import SupervisorSnapshot
from inferwatch.contracts.upstream import UpstreamCallStats
from inferwatch.contracts.vllm import VllmInstanceSnapshot, VllmModelLoaded

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
    SupervisorSnapshot,
    Alert,
)

# The tagged union msgspec dispatches on (the ``type`` field).
AnyEvent = Union[*EVENT_TYPES]  # type: ignore[valid-type]
