"""gpu-agent settings (``INFERWATCH_GPU_*``)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import ClassVar

from inferwatch.shared.settings import Env


@dataclass(frozen=True)
class GpuAgentConfig:
    """Attributes:
    interval_s: polling interval (``INFERWATCH_GPU_INTERVAL_S``).
    host: host name published as the snapshot's source (``INFERWATCH_GPU_HOST``, default: this host's name).
    proc_root: where ``/proc`` is mounted (``INFERWATCH_GPU_PROC_ROOT``; ``/host/proc`` in a container).
    nvml: ``INFERWATCH_GPU_NVML``: ``module:factory`` of another NVML binding (empty: ``pynvml``). The factory
        gets the environment and returns an object with pynvml's functions; the demo and the tests name the
        fake NVML here (``inferwatch.simulators.nvml:from_env``), so the agent itself never imports it.
    """

    ENV_PREFIX: ClassVar[str] = "INFERWATCH_GPU_"

    interval_s: float = 5.0
    host: str = ""
    proc_root: str = "/proc"
    nvml: str = ""

    @classmethod
    def from_env(cls, env: Env) -> GpuAgentConfig:
        """Read ``INFERWATCH_GPU_*``."""
        p = cls.ENV_PREFIX
        return cls(
            interval_s=env.float(p + "INTERVAL_S", cls.interval_s),
            host=env.get(p + "HOST") or socket.gethostname(),
            proc_root=env.get(p + "PROC_ROOT") or cls.proc_root,
            nvml=env.get(p + "NVML"),
        )
