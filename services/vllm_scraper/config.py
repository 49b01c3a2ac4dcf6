"""vllm-scraper settings (``INFERWATCH_VLLM_*``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from inferwatch.shared.extras import missing
from inferwatch.shared.settings import Env, Secret, SettingsError

GRPC_SCHEMES = ("grpc://", "grpcs://")  # `vllm serve --grpc` targets: health over gRPC (the `grpc` extra)


@dataclass(frozen=True)
class VllmScraperConfig:
    """Attributes:
    targets: static base URLs (``INFERWATCH_VLLM_TARGETS``, comma-separated).
    interval_s: scrape interval (``INFERWATCH_VLLM_INTERVAL_S``).
    timeout_s: per-request timeout.
    max_body_bytes: cap on a ``/metrics`` body.
    concurrency: scrapes in flight at once.
    api_key: ``INFERWATCH_VLLM_API_KEY`` (or ``_FILE``) for ``/v1/models`` behind ``--api-key``.
    tls_ca_file: custom CA for https targets (verification is always on unless ``insecure``).
    insecure: ``INFERWATCH_VLLM_TLS_INSECURE`` (explicit opt-out of TLS verification).
    dns: ``INFERWATCH_VLLM_DNS``: ``host:port`` (A/AAAA) or ``_svc._tcp.name`` (SRV) names, re-resolved each interval.
    dns_server: ``INFERWATCH_VLLM_DNS_SERVER``: ``ip[:port]`` for SRV queries (default: the system's resolv.conf).
    shard: ``INFERWATCH_VLLM_SHARD``: share targets with the other live replicas (rendezvous hashing on heartbeats).
    spread: ``INFERWATCH_VLLM_SPREAD``: spread the scrapes of one cycle over the interval instead of a burst.
    peer_expiry_intervals: a replica whose heartbeat is older than this many heartbeat intervals is gone.
    max_engines: ``INFERWATCH_VLLM_MAX_ENGINES``: cap on (model_name, engine) label sets kept per scrape of a
        target; the rest are dropped and counted (``inferwatch_vllm_dropped_series``).
    max_models: ``INFERWATCH_VLLM_MAX_MODELS``: cap on ``/v1/models`` cards kept per target (LoRA adapters included).
    """

    ENV_PREFIX: ClassVar[str] = "INFERWATCH_VLLM_"

    targets: tuple[str, ...] = ()
    interval_s: float = 15.0
    timeout_s: float = 5.0
    max_body_bytes: int = 16 * 1024 * 1024
    concurrency: int = 64
    api_key: Secret | None = None
    tls_ca_file: str = ""
    insecure: bool = False
    dns: tuple[str, ...] = ()
    dns_server: str = ""
    shard: bool = True
    spread: bool = True
    peer_expiry_intervals: float = 2.5
    max_engines: int = 32
    max_models: int = 256

    @classmethod
    def from_env(cls, env: Env) -> VllmScraperConfig:
        """Read ``INFERWATCH_VLLM_*``."""
        p = cls.ENV_PREFIX
        targets = tuple(t.rstrip("/") for t in env.list(p + "TARGETS"))
        if any(t.startswith(GRPC_SCHEMES) for t in targets) and (problem := missing("grpc", "grpc_health")):
            raise SettingsError(f"{p}TARGETS: {problem}")
        return cls(
            targets=targets,
            interval_s=env.float(p + "INTERVAL_S", cls.interval_s),
            timeout_s=env.float(p + "TIMEOUT_S", cls.timeout_s),
            max_body_bytes=env.int(p + "MAX_BODY_BYTES", cls.max_body_bytes),
            concurrency=env.int(p + "CONCURRENCY", cls.concurrency),
            api_key=env.secret(p + "API_KEY"),
            tls_ca_file=env.get(p + "TLS_CA_FILE"),
            insecure=env.bool(p + "TLS_INSECURE", False),
            dns=env.list(p + "DNS"),
            dns_server=env.get(p + "DNS_SERVER"),
            shard=env.bool(p + "SHARD", True),
            spread=env.bool(p + "SPREAD", True),
            peer_expiry_intervals=env.float(p + "PEER_EXPIRY_INTERVALS", cls.peer_expiry_intervals),
            max_engines=env.int(p + "MAX_ENGINES", cls.max_engines),
            max_models=env.int(p + "MAX_MODELS", cls.max_models),
        )
