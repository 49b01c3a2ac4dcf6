"""gpu-agent settings (``INFERWATCH_GPU_*``)."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from shared.settings import Env

DEFAULT_PORT = 9756


@dataclass(frozen=True)
class GpuAgentConfig:
    """Attributes:
    interval_s: polling interval (``INFERWATCH_GPU_INTERVAL_S``).
    host: host name published as the snapshot's source (``INFERWATCH_GPU_HOST``, default: this host's name).
    proc_root: where ``/proc`` is mounted (``INFERWATCH_GPU_PROC_ROOT``; ``/host/proc`` in a container).
    fake: ``INFERWATCH_GPU_FAKE``: drive the agent with the fake NVML (demo and tests), e.g. ``4``
        (GPU count) or ``4:thermal`` (count and scenario: ``normal``, ``memory_pressure``, ``thermal``, ``hot``,
        ``power_throttle``, ``xid``).
    fake_scenario_file: ``INFERWATCH_GPU_FAKE_SCENARIO_FILE``: with ``fake``, a file of scenario names (one a line)
        the fake NVML re-reads whenever it changes (the demo's scenario control API writes it).
    """

    interval_s: float = 5.0
    host: str = ""
    proc_root: str = "/proc"
    fake: str = ""
    fake_scenario_file: str = ""

    @classmethod
    def from_env(cls, env: Env) -> GpuAgentConfig:
        """Read ``INFERWATCH_GPU_*``."""
        p = "INFERWATCH_GPU_"
        return cls(
            interval_s=env.float(p + "INTERVAL_S", cls.interval_s),
            host=env.get(p + "HOST") or socket.gethostname(),
            proc_root=env.get(p + "PROC_ROOT") or cls.proc_root,
            fake=env.get(p + "FAKE"),
            fake_scenario_file=env.get(p + "FAKE_SCENARIO_FILE"),
        )
