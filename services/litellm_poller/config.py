"""litellm-poller settings (``INFERWATCH_LITELLM_*``, and ``INFERWATCH_CONFIG`` for several proxies)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml  # type: ignore[import-untyped]

from inferwatch.shared.settings import Env, Secret, SettingsError


@dataclass(frozen=True)
class ProxyConfig:
    """One LiteLLM proxy.

    Attributes:
        name: stable key of the proxy (the snapshot's ``source``).
        url: base URL (``http://litellm:4000``).
        key: master or virtual key (sent as ``Authorization: Bearer``), or None.
        tls_ca_file: custom CA bundle for https (verification is always on unless ``insecure``).
        insecure: explicit opt-out of TLS verification.
        key_header: ``authorization`` (default, Bearer) or ``x-litellm-api-key``.
    """

    name: str
    url: str
    key: Secret | None = None
    tls_ca_file: str = ""
    insecure: bool = False
    key_header: str = "authorization"

    def auth_headers(self) -> dict[str, str]:
        """The header that carries the key (empty without a key)."""
        if self.key is None:
            return {}
        if self.key_header == "x-litellm-api-key":
            return {"x-litellm-api-key": self.key.reveal()}
        return {"Authorization": f"Bearer {self.key.reveal()}"}


@dataclass(frozen=True)
class LitellmPollerConfig:
    """Attributes:
    proxies: the proxies to poll.
    interval_s: ``INFERWATCH_LITELLM_INTERVAL_S``: poll interval (readiness, liveliness, backlog, /metrics/).
    model_info_ttl_s: ``INFERWATCH_LITELLM_MODEL_INFO_TTL_S``: cache of /model/info, /model_group/info,
        /v1/models, /health/readiness/details.
    timeout_s: ``INFERWATCH_LITELLM_TIMEOUT_S``: per-request timeout.
    max_body_bytes: ``INFERWATCH_LITELLM_MAX_BODY_BYTES``: cap on one response.
    health_interval_s: ``INFERWATCH_LITELLM_HEALTH_INTERVAL_S``: poll ``/health`` (calls every upstream model and
        costs tokens unless LiteLLM's background health checks are on) this often; 0 (default) = never.
    """

    ENV_PREFIX: ClassVar[str] = "INFERWATCH_LITELLM_"

    proxies: tuple[ProxyConfig, ...] = ()
    interval_s: float = 30.0
    model_info_ttl_s: float = 300.0
    timeout_s: float = 10.0
    max_body_bytes: int = 32 * 1024 * 1024
    health_interval_s: float = 0.0

    @classmethod
    def from_env(cls, env: Env) -> LitellmPollerConfig:
        """Read ``INFERWATCH_LITELLM_*`` and the ``litellm`` section of ``INFERWATCH_CONFIG``.

        Raises:
            SettingsError: an unreadable config file or a proxy without a URL.
        """
        p = cls.ENV_PREFIX
        proxies: list[ProxyConfig] = []
        url = env.get(p + "URL")
        if url:
            proxies.append(
                ProxyConfig(
                    name=env.get(p + "NAME", "default"),
                    url=url.rstrip("/"),
                    key=env.secret(p + "KEY"),
                    tls_ca_file=env.get(p + "TLS_CA_FILE"),
                    insecure=env.bool(p + "TLS_INSECURE", False),
                    key_header=env.get(p + "KEY_HEADER", "authorization").lower(),
                )
            )
        path = env.get("INFERWATCH_CONFIG")
        if path:
            proxies.extend(proxies_from_file(Path(path)))
        names = [x.name for x in proxies]
        if len(set(names)) != len(names):
            raise SettingsError(f"LiteLLM proxy names must be unique, got {names}")
        return cls(
            proxies=tuple(proxies),
            interval_s=env.float(p + "INTERVAL_S", cls.interval_s),
            model_info_ttl_s=env.float(p + "MODEL_INFO_TTL_S", cls.model_info_ttl_s),
            timeout_s=env.float(p + "TIMEOUT_S", cls.timeout_s),
            max_body_bytes=env.int(p + "MAX_BODY_BYTES", cls.max_body_bytes),
            health_interval_s=env.float(p + "HEALTH_INTERVAL_S", cls.health_interval_s),
        )


def proxies_from_file(path: Path) -> list[ProxyConfig]:
    """The ``litellm.proxies`` list of a TOML (``.toml``) or YAML file.

    Each entry: ``name``, ``url``, ``key`` or ``key_file``, optional ``tls_ca_file``, ``tls_insecure``,
    ``key_header``.  A file without a ``litellm`` section gives no proxies.

    Raises:
        SettingsError: unreadable file or an invalid entry (the message never holds a key).
    """
    try:
        text = path.read_text(encoding="utf-8")
        data: Any = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise SettingsError(f"INFERWATCH_CONFIG {path}: {type(exc).__name__}") from None
    section = data.get("litellm") if isinstance(data, dict) else None
    if section is None:
        return []
    entries = section.get("proxies") if isinstance(section, dict) else None
    if not isinstance(entries, list):
        raise SettingsError(f"INFERWATCH_CONFIG {path}: litellm.proxies must be a list")
    out = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str) or not entry["url"]:
            raise SettingsError(f"INFERWATCH_CONFIG {path}: litellm.proxies[{index}] needs a url")
        key: Secret | None = None
        if entry.get("key"):
            key = Secret(str(entry["key"]))
        elif entry.get("key_file"):
            try:
                key = Secret(Path(str(entry["key_file"])).read_text(encoding="utf-8").strip())
            except OSError as exc:
                raise SettingsError(f"litellm.proxies[{index}].key_file: {type(exc).__name__}") from None
        out.append(
            ProxyConfig(
                name=str(entry.get("name") or f"proxy{index}"),
                url=entry["url"].rstrip("/"),
                key=key,
                tls_ca_file=str(entry.get("tls_ca_file") or ""),
                insecure=bool(entry.get("tls_insecure", False)),
                key_header=str(entry.get("key_header") or "authorization").lower(),
            )
        )
    return out
