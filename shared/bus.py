"""The NATS bus: connect from settings, publish and subscribe typed events, survive outages.

Raw nats-py (not FastStream) on purpose: the aggregator's ingest loop is the hot path, and a
nats-py callback costs ~5 µs per message against ~60 µs through FastStream on our machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import OutboundBufferLimitError

from inferwatch.contracts import AnyEvent, DecodeError, Encoding, Event, decode, encode, subject_for
from inferwatch.shared.log import RateLimitedLog
from inferwatch.shared.settings import Env, Secret
from inferwatch.shared.tls import TlsPolicy

log = logging.getLogger("inferwatch.bus")

DEFAULT_URL = "nats://127.0.0.1:4222"
DRAIN_TIMEOUT_S = 2.0  # at shutdown; against a live server a drain takes milliseconds


@dataclass(frozen=True)
class BusSettings:
    """How to reach NATS. Read with `BusSettings.from_env`.

    Attributes:
        servers: server URLs (``NATS_URL``, comma-separated for a cluster).
        user: ``NATS_USER``.
        password: ``NATS_PASSWORD`` / ``NATS_PASSWORD_FILE``.
        token: ``NATS_TOKEN`` / ``NATS_TOKEN_FILE``.
        nkey_seed_file: ``NATS_NKEY_SEED_FILE``.
        creds_file: ``NATS_CREDS_FILE`` (a ``.creds`` file: JWT + NKey seed).
        tls_ca_file: ``NATS_TLS_CA_FILE``, a custom CA bundle or hashed CA folder (verification stays on).
        tls_cert_file: ``NATS_TLS_CERT_FILE``, client certificate.
        tls_key_file: ``NATS_TLS_KEY_FILE``, client key.
        pending_bytes: ``NATS_PENDING_BYTES``, outbound buffer kept while disconnected.
        encoding: ``INFERWATCH_ENCODING`` (``msgpack`` or ``json``) for what this process publishes.
        kv_replicas: ``INFERWATCH_KV_REPLICAS``, replicas of the key-value buckets this process creates
            (0: 3 on a cluster of three or more servers, else 1; see `inferwatch.shared.kv`).
    """

    servers: tuple[str, ...] = (DEFAULT_URL,)
    user: str = ""
    password: Secret | None = None
    token: Secret | None = None
    nkey_seed_file: str = ""
    creds_file: str = ""
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    pending_bytes: int = 8 * 1024 * 1024
    encoding: Encoding = "msgpack"
    kv_replicas: int = 0

    @classmethod
    def from_env(cls, env: Env | None = None) -> BusSettings:
        """Read the ``NATS_*`` variables (the names the NATS ecosystem uses)."""
        env = env or Env()
        encoding = env.get("INFERWATCH_ENCODING", "msgpack")
        return cls(
            servers=env.list("NATS_URL", (DEFAULT_URL,)),
            user=env.get("NATS_USER"),
            password=env.secret("NATS_PASSWORD"),
            token=env.secret("NATS_TOKEN"),
            nkey_seed_file=env.get("NATS_NKEY_SEED_FILE"),
            creds_file=env.get("NATS_CREDS_FILE"),
            tls_ca_file=env.get("NATS_TLS_CA_FILE"),
            tls_cert_file=env.get("NATS_TLS_CERT_FILE"),
            tls_key_file=env.get("NATS_TLS_KEY_FILE"),
            pending_bytes=env.int("NATS_PENDING_BYTES", 8 * 1024 * 1024),
            encoding="json" if encoding == "json" else "msgpack",
            kv_replicas=env.int("INFERWATCH_KV_REPLICAS", 0),
        )

    def tls_context(self) -> ssl.SSLContext | None:
        """A verifying TLS context when any TLS setting or a ``tls://`` URL asks for one."""
        wants_tls = any(s.startswith("tls://") for s in self.servers)
        if not (wants_tls or self.tls_ca_file or self.tls_cert_file):
            return None
        policy = TlsPolicy.from_ca_path(self.tls_ca_file, cert_file=self.tls_cert_file, key_file=self.tls_key_file)
        return policy.context()


@dataclass
class BusStats:
    """Counters the owning service exports on its own ``/metrics``."""

    published: int = 0
    dropped: int = 0
    reconnects: int = 0
    disconnects: int = 0
    decode_errors: int = 0
    slow_consumer_drops: int = 0


EventHandler = Callable[[AnyEvent, str], Awaitable[None]]


@dataclass
class Bus:
    """One NATS connection per process, with backoff on start and bounded buffering on outages."""

    settings: BusSettings
    name: str = "inferwatch"
    stats: BusStats = field(default_factory=BusStats)
    status: str = "not connected"
    _nc: NatsClient | None = None
    _rate_log: RateLimitedLog = field(default_factory=RateLimitedLog)

    @property
    def connected(self) -> bool:
        """Whether the connection is up right now."""
        return self._nc is not None and self._nc.is_connected

    @property
    def client(self) -> NatsClient:
        """The nats-py client (for JetStream, key-value buckets and raw subscriptions)."""
        if self._nc is None:
            raise RuntimeError("bus not connected")
        return self._nc

    async def connect(self, *, max_delay_s: float = 10.0, stop: asyncio.Event | None = None) -> None:
        """Connect, retrying with exponential backoff and jitter until it works or ``stop`` is set.

        Once connected, nats-py reconnects by itself forever; publishes made while it is away go
        to a buffer of ``pending_bytes`` and are dropped (counted, logged) beyond it.
        """
        delay = 0.2
        while True:
            # nats-py's own connect retries forever with max_reconnect_attempts=-1, silently; probe
            # first so that /readyz can say why we are waiting.
            reachable = await self._any_server_answers()
            if reachable:
                try:
                    self._nc = await asyncio.wait_for(nats.connect(**self._options()), 10)
                    self.status = "connected"
                    log.info("connected to NATS", extra={"server": self._server_label()})
                    return
                except Exception as exc:  # nats raises several unrelated types here
                    self.status = f"connecting to NATS: {type(exc).__name__}: {str(exc)[:200]}"
            else:
                self.status = f"connecting to NATS: no server answers at {', '.join(self._safe_servers())}"
            log.warning("NATS not reachable, retrying", extra={"error": self.status, "retry_in_s": round(delay, 2)})
            if stop is not None:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    raise asyncio.CancelledError
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(delay)
            delay = min(max_delay_s, delay * 2) * random.uniform(0.8, 1.2)

    def _safe_servers(self) -> list[str]:
        # scheme://host:port only: a URL may carry user:password.
        out = []
        for server in self.settings.servers:
            parts = urlsplit(server if "://" in server else f"nats://{server}")
            out.append(f"{parts.scheme}://{parts.hostname}:{parts.port or 4222}")
        return out

    async def _any_server_answers(self) -> bool:
        for server in self._safe_servers():
            parts = urlsplit(server)
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port or 4222), 1.0)
            except (OSError, TimeoutError):
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True
        return False

    def _server_label(self) -> str:
        # Only scheme://host:port — never userinfo.
        nc = self._nc
        if nc is None or nc.connected_url is None:
            return ""
        url = nc.connected_url
        return f"{url.scheme}://{url.hostname}:{url.port}"

    def _options(self) -> dict[str, Any]:
        s = self.settings
        opts: dict[str, Any] = {
            "servers": list(s.servers),
            "name": self.name,
            "connect_timeout": 2,
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.5,
            "pending_size": s.pending_bytes,
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
        }
        if s.user:
            opts["user"] = s.user
        if s.password:
            opts["password"] = s.password.reveal()
        if s.token:
            opts["token"] = s.token.reveal()
        if s.creds_file:
            opts["user_credentials"] = s.creds_file
        if s.nkey_seed_file:
            opts["nkeys_seed"] = s.nkey_seed_file
        tls = s.tls_context()
        if tls is not None:
            opts["tls"] = tls
        return opts

    async def _on_error(self, exc: Exception) -> None:
        if type(exc).__name__ == "SlowConsumerError":
            self.stats.slow_consumer_drops += 1
            allowed, suppressed = self._rate_log.allow("slow_consumer")
            if allowed:
                log.warning("slow consumer: NATS dropped messages for a subscription", extra={"suppressed": suppressed})
            return
        allowed, suppressed = self._rate_log.allow(f"error:{type(exc).__name__}")
        if allowed:
            log.warning("NATS error", extra={"error": f"{type(exc).__name__}: {exc}", "suppressed": suppressed})

    async def _on_disconnected(self) -> None:
        self.stats.disconnects += 1
        self.status = "disconnected from NATS, reconnecting"
        log.warning("disconnected from NATS; buffering publishes", extra={"buffer_bytes": self.settings.pending_bytes})

    async def _on_reconnected(self) -> None:
        self.stats.reconnects += 1
        self.status = "connected"
        log.info("reconnected to NATS", extra={"server": self._server_label()})

    async def publish(self, event: Event, *, encoding: Encoding | None = None) -> bool:
        """Publish one event on its subject. Returns False when it was dropped (buffer full, no connection)."""
        return await self.publish_raw(subject_for(event), encode(event, encoding or self.settings.encoding))

    async def publish_raw(self, subject: str, payload: bytes) -> bool:
        """Publish pre-encoded bytes (the bench and the demo's high-rate paths)."""
        nc = self._nc
        if nc is None or nc.is_closed:
            self._count_drop("not connected")
            return False
        try:
            await nc.publish(subject, payload)
        except OutboundBufferLimitError:
            self._count_drop("outbound buffer full while disconnected")
            return False
        self.stats.published += 1
        return True

    def _count_drop(self, why: str) -> None:
        self.stats.dropped += 1
        allowed, suppressed = self._rate_log.allow(f"drop:{why}")
        if allowed:
            log.warning(
                "dropping published events: %s",
                why,
                extra={"dropped_total": self.stats.dropped, "suppressed": suppressed},
            )

    async def subscribe(self, subject: str, handler: EventHandler, *, queue: str = "") -> Subscription:
        """Subscribe with decoding: ``handler(event, subject)``; undecodable messages are counted and skipped."""

        async def on_msg(msg: Msg) -> None:
            try:
                event = decode(msg.data)
            except DecodeError as exc:
                self.stats.decode_errors += 1
                allowed, _ = self._rate_log.allow(f"decode:{msg.subject}")
                if allowed:
                    log.warning("undecodable event", extra={"subject": msg.subject, "error": str(exc)[:200]})
                return
            await handler(event, msg.subject)

        return await self.subscribe_raw(subject, on_msg, queue=queue)

    async def subscribe_raw(
        self, subject: str, callback: Callable[[Msg], Awaitable[None]], *, queue: str = ""
    ) -> Subscription:
        """Subscribe with a raw nats-py callback (the aggregator's hot path decodes itself)."""
        return await self.client.subscribe(
            subject,
            queue=queue,
            cb=callback,
            pending_msgs_limit=512 * 1024,
            pending_bytes_limit=256 * 1024 * 1024,
        )

    async def flush(self, timeout_s: float = 2.0) -> None:
        """Wait until the server has everything published so far."""
        if self._nc is not None and self._nc.is_connected:
            await self._nc.flush(timeout=max(1, round(timeout_s)))

    async def close(self) -> None:
        """Drain and close (flushes buffered publishes when connected)."""
        nc, self._nc = self._nc, None
        if nc is None or nc.is_closed:
            return
        try:
            if nc.is_connected:
                await asyncio.wait_for(nc.drain(), DRAIN_TIMEOUT_S)
        except (Exception, asyncio.CancelledError):  # closing is best effort at shutdown
            pass
        with contextlib.suppress(Exception):
            await nc.close()
        self.status = "closed"
