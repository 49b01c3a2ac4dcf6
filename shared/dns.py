"""DNS target specs shared by the scrapers: ``host:port`` (A/AAAA) or ``_svc._tcp.name`` (SRV).

A spec may carry a ``dns+`` prefix (``dns+http://epp.ns.svc:9090`` style in a target list) and ``srv+`` forces
an SRV query for a name that does not start with ``_``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable

import dns.asyncresolver
import dns.exception

log = logging.getLogger("inferwatch.dns")

#: What a DNS lookup may raise that means "this name did not resolve now" (keep the previous targets).
LOOKUP_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, TimeoutError, dns.exception.DNSException)

#: ``(spec, nameserver) -> target URLs``: tests substitute their own.
Resolver = Callable[[str, str], Awaitable[list[str]]]


def is_dns_spec(target: str) -> bool:
    """Whether a configured target is a DNS spec (``dns+…``) rather than a URL."""
    return target.strip().startswith("dns+")


def parse_dns_spec(spec: str) -> tuple[str, str, int]:
    """``host:port`` → (``a``, host, port); ``_svc._tcp.name`` (optionally ``srv+…``) → (``srv``, name, 0).

    A leading ``dns+`` is dropped, and so is an ``http://`` scheme after it (``dns+http://epp.ns.svc:9090``).

    Raises:
        ValueError: neither form.
    """
    spec = spec.strip().removeprefix("dns+")
    if spec.startswith("https://"):  # resolved URLs carry an IP, which a certificate for the name would not match
        raise ValueError(f"DNS target {spec!r}: https is not supported (the certificate names the host, not its IPs)")
    spec = spec.removeprefix("http://").rstrip("/")
    if spec.startswith("srv+"):
        return "srv", spec[4:], 0
    if spec.startswith("_"):
        return "srv", spec, 0
    host, sep, port = spec.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"DNS target {spec!r}: expected host:port or _service._tcp.name")
    return "a", host.strip("[]"), int(port)


def target_url(address: str, port: int) -> str:
    """``http://address:port`` (IPv6 in brackets)."""
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}"


async def resolve_dns(spec: str, nameserver: str = "") -> list[str]:
    """Target URLs behind one DNS spec: A/AAAA (``host:port``, system resolver) or SRV (``_svc._tcp.name``).

    ``nameserver`` (``ip`` or ``ip:port``) sends SRV queries to that server instead of resolv.conf's.

    Raises:
        ValueError: a malformed spec; ``OSError``/``dns.exception.DNSException``: the lookup failed.
    """
    kind, name, port = parse_dns_spec(spec)
    if kind == "a":
        infos = await asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_STREAM)
        return sorted({target_url(str(info[4][0]), port) for info in infos})
    resolver = dns.asyncresolver.Resolver(configure=not nameserver)
    if nameserver:
        ip, _, ns_port = nameserver.rpartition(":") if nameserver.count(":") == 1 else (nameserver, "", "53")
        resolver.nameservers = [ip]
        resolver.port = int(ns_port or 53)
    answer = await resolver.resolve(name, "SRV", lifetime=5.0)
    urls: set[str] = set()
    for record in answer:
        host = str(record.target).rstrip(".")
        urls.add(target_url(host, int(record.port)))
    return sorted(urls)


async def resolve_specs(
    specs: Iterable[str], resolver: Resolver, nameserver: str, timeout_s: float
) -> dict[str, list[str]]:
    """Each spec's target URLs. A spec whose lookup fails or times out is logged and left out of the
    result, so the caller keeps that spec's previous targets rather than dropping them on a DNS hiccup."""
    found: dict[str, list[str]] = {}
    for spec in specs:
        try:
            found[spec] = await asyncio.wait_for(resolver(spec, nameserver), timeout=max(1.0, timeout_s))
        except LOOKUP_ERRORS as exc:
            log.warning("DNS lookup failed", extra={"dns_name": spec, "error": f"{type(exc).__name__}: {exc}"[:200]})
    return found
