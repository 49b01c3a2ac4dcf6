"""epp-scraper settings (``INFERWATCH_EPP_*``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from inferwatch.shared.dns import is_dns_spec, parse_dns_spec
from inferwatch.shared.settings import Env, SettingsError

SA_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"


@dataclass(frozen=True)
class EppScraperConfig:
    """Attributes:
    targets: static EPP metrics base URLs (``INFERWATCH_EPP_TARGETS``, comma-separated, e.g. ``http://epp:9090``).
    dns: DNS specs from the same list (``dns+http://epp.ns.svc:9090`` or ``dns+epp.ns.svc:9090``: A/AAAA;
        ``dns+_metrics._tcp.epp.ns.svc.cluster.local``: SRV), re-resolved every ``dns_interval_s``.
    dns_server: ``INFERWATCH_EPP_DNS_SERVER``: ``ip[:port]`` for SRV queries (default: resolv.conf).
    dns_interval_s: ``INFERWATCH_EPP_DNS_INTERVAL_S``: how often DNS specs are re-resolved (default: every scrape).
    interval_s: scrape interval (``INFERWATCH_EPP_INTERVAL_S``).
    timeout_s: per-request timeout (``INFERWATCH_EPP_TIMEOUT_S``).
    token_file: bearer token file, re-read when it changes (``INFERWATCH_EPP_TOKEN_FILE``; default the pod's
        service-account token when that file exists; ``""`` sends no token).
    tls_ca_file: custom CA for https targets, a PEM bundle or a CA directory (``INFERWATCH_EPP_TLS_CA_FILE``).
    insecure: ``INFERWATCH_EPP_TLS_INSECURE``: explicit opt-out of TLS verification.
    """

    ENV_PREFIX: ClassVar[str] = "INFERWATCH_EPP_"

    targets: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    dns_server: str = ""
    dns_interval_s: float = 0.0
    interval_s: float = 15.0
    timeout_s: float = 5.0
    token_file: str = ""
    tls_ca_file: str = ""
    insecure: bool = False

    @classmethod
    def from_env(cls, env: Env) -> EppScraperConfig:
        """Read ``INFERWATCH_EPP_*``."""
        import os

        p = cls.ENV_PREFIX
        default_token = SA_TOKEN_FILE if os.path.exists(SA_TOKEN_FILE) else ""
        listed = env.list(p + "TARGETS")
        dns = tuple(t for t in listed if is_dns_spec(t))
        for spec in dns:  # a typo fails at start, not silently at every re-resolution
            try:
                parse_dns_spec(spec)
            except ValueError as exc:
                raise SettingsError(f"{p}TARGETS: {exc}") from None
        return cls(
            targets=tuple(t.rstrip("/") for t in listed if not is_dns_spec(t)),
            dns=dns,
            dns_server=env.get(p + "DNS_SERVER"),
            dns_interval_s=env.float(p + "DNS_INTERVAL_S", 0.0),
            interval_s=env.float(p + "INTERVAL_S", cls.interval_s),
            timeout_s=env.float(p + "TIMEOUT_S", cls.timeout_s),
            token_file=env.get(p + "TOKEN_FILE", default_token),
            tls_ca_file=env.get(p + "TLS_CA_FILE"),
            insecure=env.bool(p + "TLS_INSECURE", False),
        )
