"""model-catalog settings (``INFERWATCH_CATALOG_*``, plus the Hugging Face client's own ``HF_*`` variables)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from inferwatch.shared.settings import Env, Secret, SettingsError

HF_DEFAULT_ENDPOINT = "https://huggingface.co"


@dataclass(frozen=True)
class ModelCatalogConfig:
    """Attributes:
    interval_s: the catalog is published this often, and at once when it changes (``INFERWATCH_CATALOG_INTERVAL_S``).
    name: the snapshot's ``source`` key, the same for every replica so they overwrite one another
        (``INFERWATCH_CATALOG_NAME``).
    stale_intervals: a source silent for this many of its intervals makes its models unavailable
        (``INFERWATCH_CATALOG_STALE_INTERVALS``).
    retain_s: a source silent this long is forgotten (``INFERWATCH_CATALOG_RETAIN_S``).
    hf_endpoint: Hugging Face Hub base URL (``HF_ENDPOINT``, as ``huggingface_hub`` reads it).
    hf_token: bearer token for private/gated repos (``HF_TOKEN`` / ``HF_TOKEN_FILE``).
    hf_offline: ``HF_HUB_OFFLINE=1``: no request to the Hub at all.
    hf_timeout_s: per-request timeout (``INFERWATCH_CATALOG_HF_TIMEOUT_S``).
    hf_cache_ttl_s: how long a lookup (answer, 401/403, 404) is kept (``INFERWATCH_CATALOG_HF_CACHE_TTL_S``).
    hf_concurrency: lookups in flight at once (``INFERWATCH_CATALOG_HF_CONCURRENCY``).
    hf_retry_base_s: first backoff after a timeout/5xx, doubling up to an hour
        (``INFERWATCH_CATALOG_HF_RETRY_BASE_S``).
    hf_default_retry_after_s: pause after a 429 without ``Retry-After`` (``INFERWATCH_CATALOG_HF_RETRY_AFTER_S``).
    kv_bucket: JetStream key-value bucket shared by replicas (``INFERWATCH_CATALOG_KV_BUCKET``).
    """

    ENV_PREFIX: ClassVar[str] = "INFERWATCH_CATALOG_"

    interval_s: float = 30.0
    name: str = "model-catalog"
    stale_intervals: float = 3.0
    retain_s: float = 86400.0
    hf_endpoint: str = HF_DEFAULT_ENDPOINT
    hf_token: Secret | None = None
    hf_offline: bool = False
    hf_timeout_s: float = 10.0
    hf_cache_ttl_s: float = 86400.0
    hf_concurrency: int = 4
    hf_retry_base_s: float = 30.0
    hf_default_retry_after_s: float = 60.0
    kv_bucket: str = "inferwatch_catalog_hf"

    @classmethod
    def from_env(cls, env: Env) -> ModelCatalogConfig:
        """Read ``INFERWATCH_CATALOG_*`` and ``HF_ENDPOINT`` / ``HF_TOKEN`` / ``HF_HUB_OFFLINE``."""
        p = cls.ENV_PREFIX
        config = cls(
            interval_s=env.float(p + "INTERVAL_S", cls.interval_s),
            name=env.get(p + "NAME", cls.name),
            stale_intervals=env.float(p + "STALE_INTERVALS", cls.stale_intervals),
            retain_s=env.float(p + "RETAIN_S", cls.retain_s),
            hf_endpoint=env.get("HF_ENDPOINT", HF_DEFAULT_ENDPOINT).rstrip("/"),
            hf_token=env.secret("HF_TOKEN"),
            hf_offline=env.bool("HF_HUB_OFFLINE", False),
            hf_timeout_s=env.float(p + "HF_TIMEOUT_S", cls.hf_timeout_s),
            hf_cache_ttl_s=env.float(p + "HF_CACHE_TTL_S", cls.hf_cache_ttl_s),
            hf_concurrency=env.int(p + "HF_CONCURRENCY", cls.hf_concurrency),
            hf_retry_base_s=env.float(p + "HF_RETRY_BASE_S", cls.hf_retry_base_s),
            hf_default_retry_after_s=env.float(p + "HF_RETRY_AFTER_S", cls.hf_default_retry_after_s),
            kv_bucket=env.get(p + "KV_BUCKET", cls.kv_bucket),
        )
        if config.interval_s <= 0 or config.hf_timeout_s <= 0 or config.hf_cache_ttl_s <= 0:
            raise SettingsError(f"{p}INTERVAL_S, {p}HF_TIMEOUT_S and {p}HF_CACHE_TTL_S must be > 0")
        if config.hf_concurrency < 1:
            raise SettingsError(f"{p}HF_CONCURRENCY must be >= 1")
        if not config.hf_endpoint.startswith(("http://", "https://")):
            raise SettingsError("HF_ENDPOINT must be an http(s) URL")
        return config
