"""One TLS policy for every outgoing connection (HTTP upstreams and NATS): verification on unless opted out."""

from __future__ import annotations

import functools
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import certifi


@dataclass(frozen=True)
class TlsPolicy:
    """How a client verifies the servers it talks to, and how it proves itself (mutual TLS).

    Attributes:
        ca_file: PEM bundle of trusted CAs (replaces the default trust store).
        ca_dir: directory of hashed CA certificates (``c_rehash``), as OpenSSL's ``CApath``.
        cert_file: client certificate (PEM) for mutual TLS.
        key_file: its private key (empty: the key is in ``cert_file``).
        insecure: skip verification entirely; only an explicit opt-out ever turns it off.
    """

    ca_file: str = ""
    ca_dir: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure: bool = False

    @classmethod
    def from_ca_path(cls, path: str, *, insecure: bool = False, cert_file: str = "", key_file: str = "") -> TlsPolicy:
        """The policy for one ``*_TLS_CA_FILE`` setting, which may name a bundle or a CA directory."""
        is_dir = bool(path) and os.path.isdir(path)
        return cls(
            ca_file="" if is_dir else path,
            ca_dir=path if is_dir else "",
            cert_file=cert_file,
            key_file=key_file,
            insecure=insecure,
        )

    def context(self) -> ssl.SSLContext:
        """The client context for this policy, built once per distinct policy and shared.

        Sharing matters: loading a CA bundle costs milliseconds, per client that is seconds for a thousand
        targets. Without a CA file or directory, the system trust store and certifi's bundle are trusted.

        Raises:
            OSError, ssl.SSLError: a CA or certificate file cannot be read or is not PEM.
        """
        return _context(self)

    def root_certificates(self) -> bytes | None:
        """The trusted CAs as PEM, for clients that take bytes rather than a context (gRPC); None: the defaults.

        Read once per distinct policy, like `context`.

        Raises:
            OSError: the CA file or directory cannot be read.
        """
        return _root_certificates(self)


@functools.cache
def _root_certificates(policy: TlsPolicy) -> bytes | None:
    if policy.ca_file:
        return Path(policy.ca_file).read_bytes()
    if policy.ca_dir:
        return b"".join(p.read_bytes() for p in sorted(Path(policy.ca_dir).iterdir()) if p.is_file())
    return None


@functools.cache
def _context(policy: TlsPolicy) -> ssl.SSLContext:
    custom = bool(policy.ca_file or policy.ca_dir)
    context = ssl.create_default_context(cafile=policy.ca_file or None, capath=policy.ca_dir or None)
    if not custom:
        context.load_verify_locations(cafile=certifi.where())  # what httpx trusted before: slim images lack CAs
    if policy.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if policy.cert_file:
        context.load_cert_chain(policy.cert_file, policy.key_file or None)
    return context
