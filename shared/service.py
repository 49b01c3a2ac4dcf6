"""The common anatomy of every inferwatch service.

`run_service` gives a service: settings from the environment, structured logs, an HTTP server with
``/healthz`` (the process lives), ``/readyz`` (it is doing its job, or why not) and ``/metrics`` (its
own metrics), a NATS connection that retries until it works, a heartbeat on
``inferwatch.v2.heartbeat.<service>.<instance>``, and a graceful stop on SIGTERM/SIGINT.

The HTTP server may require credentials and speak TLS (settings common to every service, `HttpSecurity`):
``INFERWATCH_HTTP_AUTH_BEARER_TOKEN[_FILE]``, ``INFERWATCH_HTTP_AUTH_BASIC_USER`` +
``INFERWATCH_HTTP_AUTH_BASIC_PASSWORD[_FILE]``, ``INFERWATCH_HTTP_AUTH_PROBES`` and
``INFERWATCH_HTTP_TLS_CERT_FILE`` / ``INFERWATCH_HTTP_TLS_KEY_FILE``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import importlib
import logging
import os
import signal
import socket
import ssl
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from multidict import CIMultiDict
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from inferwatch import __version__
from inferwatch.contracts.heartbeat import Heartbeat
from inferwatch.contracts.upstream import EndpointCalls, UpstreamCallStats
from inferwatch.shared.bus import Bus, BusSettings
from inferwatch.shared.http import UpstreamMetrics
from inferwatch.shared.log import configure_logging
from inferwatch.shared.loop import run_every
from inferwatch.shared.settings import Env, Secret, SettingsError

log = logging.getLogger("inferwatch.service")

STOP_GRACE_S = 2.0  # how long a stopping service's work may take before it is cancelled


def instance_id(service: str) -> str:
    """``<service>@<host>:<pid>``: unique per process, readable in logs and heartbeats."""
    return f"{service}@{socket.gethostname()}:{os.getpid()}"


@dataclass
class ServiceContext:
    """What a service's main coroutine gets: its settings, bus, registry and readiness switch."""

    name: str
    env: Env
    bus: Bus
    registry: CollectorRegistry
    stop: asyncio.Event
    instance: str
    heartbeat_interval_s: float = 5.0
    started_at: float = field(default_factory=time.time)
    ready: bool = False
    reason: str = "starting"
    targets: int = 0

    def set_ready(self, ready: bool, reason: str = "") -> None:
        """Report readiness on ``/readyz`` and in the heartbeat."""
        if (ready, reason) != (self.ready, self.reason):
            log.info("readiness changed", extra={"ready": ready, "reason": reason})
        self.ready, self.reason = ready, reason

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless asked to stop; True when the service should stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)
        return self.stop.is_set()


class _BusCollector(Collector):
    """Exports the bus counters on the service's own ``/metrics``."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        stats = self._ctx.bus.stats
        for name, value, doc in (
            ("published", stats.published, "Events published."),
            ("publish_dropped", stats.dropped, "Events dropped: outbound buffer full or no connection."),
            ("reconnects", stats.reconnects, "Reconnections to NATS."),
            ("disconnects", stats.disconnects, "Times the NATS connection was lost (a slow-consumer cut too)."),
            ("decode_errors", stats.decode_errors, "Received messages that were not valid events."),
            ("slow_consumer_drops", stats.slow_consumer_drops, "Times NATS dropped messages for a slow subscriber."),
        ):
            yield CounterMetricFamily(f"inferwatch_bus_{name}", doc, value=value)
        yield GaugeMetricFamily(
            "inferwatch_bus_connected", "1 when connected to NATS.", value=1.0 if self._ctx.bus.connected else 0.0
        )
        yield GaugeMetricFamily(
            "inferwatch_service_ready", "1 when the service is ready.", value=1.0 if self._ctx.ready else 0.0
        )


@dataclass(frozen=True)
class HttpSecurity:
    """Who may read a service's HTTP endpoints, and whether they are served over TLS.

    Attributes:
        bearer_token: ``INFERWATCH_HTTP_AUTH_BEARER_TOKEN`` (or ``_FILE``): accepted as ``Authorization: Bearer …``.
        basic_user: ``INFERWATCH_HTTP_AUTH_BASIC_USER``; needs ``basic_password``.
        basic_password: ``INFERWATCH_HTTP_AUTH_BASIC_PASSWORD`` (or ``_FILE``).
        protect_probes: ``INFERWATCH_HTTP_AUTH_PROBES``: also require credentials on ``/healthz`` and ``/readyz``.
            Off by default: kubelet probes send no credentials, and the probes reveal nothing but liveness.
        tls_cert_file: ``INFERWATCH_HTTP_TLS_CERT_FILE``: PEM certificate (chain) to serve HTTPS with.
        tls_key_file: ``INFERWATCH_HTTP_TLS_KEY_FILE``: its PEM private key (empty: the key is in the cert file).
    """

    bearer_token: Secret | None = None
    basic_user: str = ""
    basic_password: Secret | None = None
    protect_probes: bool = False
    tls_cert_file: str = ""
    tls_key_file: str = ""

    @property
    def auth_required(self) -> bool:
        """Whether any credential is configured."""
        return self.bearer_token is not None or self.basic_password is not None

    @classmethod
    def from_env(cls, env: Env) -> HttpSecurity:
        """Read ``INFERWATCH_HTTP_AUTH_*`` and ``INFERWATCH_HTTP_TLS_*``.

        Raises:
            SettingsError: half a basic-auth pair, or a TLS key without a certificate.
        """
        p = "INFERWATCH_HTTP_"
        security = cls(
            bearer_token=env.secret(p + "AUTH_BEARER_TOKEN"),
            basic_user=env.get(p + "AUTH_BASIC_USER"),
            basic_password=env.secret(p + "AUTH_BASIC_PASSWORD"),
            protect_probes=env.bool(p + "AUTH_PROBES", False),
            tls_cert_file=env.get(p + "TLS_CERT_FILE"),
            tls_key_file=env.get(p + "TLS_KEY_FILE"),
        )
        if bool(security.basic_user) != (security.basic_password is not None):
            raise SettingsError(f"set both {p}AUTH_BASIC_USER and {p}AUTH_BASIC_PASSWORD[_FILE], or neither")
        if security.tls_key_file and not security.tls_cert_file:
            raise SettingsError(f"{p}TLS_KEY_FILE needs {p}TLS_CERT_FILE")
        return security

    def ssl_context(self) -> ssl.SSLContext | None:
        """A server TLS context from the certificate and key (None: plain HTTP).

        Raises:
            SettingsError: the files cannot be read or do not form a certificate/key pair.
        """
        if not self.tls_cert_file:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.tls_cert_file, self.tls_key_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise SettingsError(f"INFERWATCH_HTTP_TLS_CERT_FILE/KEY_FILE: cannot load: {exc}") from None
        return context

    def authorized(self, header: str) -> bool:
        """Whether an ``Authorization`` header value carries an accepted credential (constant-time compares)."""
        scheme, _, credentials = header.strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer" and self.bearer_token is not None:
            return hmac.compare_digest(credentials.encode(), self.bearer_token.reveal().encode())
        if scheme.lower() == "basic" and self.basic_password is not None:
            try:
                user, sep, password = base64.b64decode(credentials, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            # Both compares always run, so the time taken does not say which half was wrong.
            user_ok = hmac.compare_digest(user.encode(), self.basic_user.encode())
            password_ok = hmac.compare_digest(password.encode(), self.basic_password.reveal().encode())
            return bool(sep) and user_ok and password_ok
        return False

    def challenges(self) -> list[str]:
        """The ``WWW-Authenticate`` values of a 401: one per configured scheme."""
        out = []
        if self.basic_password is not None:
            out.append('Basic realm="inferwatch", charset="UTF-8"')
        if self.bearer_token is not None:
            out.append('Bearer realm="inferwatch"')
        return out


PROBE_PATHS = frozenset({"/healthz", "/readyz"})


def auth_middleware(security: HttpSecurity) -> Middleware:
    """An aiohttp middleware answering 401 (with ``WWW-Authenticate``) to requests without accepted credentials."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PROBE_PATHS and not security.protect_probes:
            return await handler(request)
        if security.authorized(request.headers.get("Authorization", "")):
            return await handler(request)
        headers: CIMultiDict[str] = CIMultiDict()
        for challenge in security.challenges():
            headers.add("WWW-Authenticate", challenge)
        return web.json_response({"error": "unauthorized"}, status=401, headers=headers)

    return check


class ServiceConfig(Protocol):
    """A service's settings: read from the environment under the service's one prefix."""

    ENV_PREFIX: ClassVar[str]

    @classmethod
    def from_env(cls, env: Env) -> Any:
        """Read ``ENV_PREFIX*`` (raises `SettingsError` with a clear message on bad input)."""
        ...


@dataclass(frozen=True)
class ServiceApp:
    """What a service's ``build(ctx, config)`` returns: its main coroutine and any extra HTTP routes.

    ``run`` starts once NATS is connected; ``routes`` are served from the start (a route may replace
    the default ``/metrics``).
    """

    run: Callable[[], Coroutine[Any, Any, object]]
    routes: list[web.RouteDef] = field(default_factory=list)
    middlewares: list[Middleware] = field(default_factory=list)  # run inside the authentication one


@dataclass(frozen=True)
class ServiceSpec:
    """One service, declared once (`inferwatch.services.SERVICES`): everything else derives from this.

    Attributes:
        name: what the CLI, heartbeats and logs call it (``vllm-scraper``).
        port: default HTTP port (``<ENV_PREFIX>HTTP_PORT`` overrides it).
        config: its settings type; ``config.ENV_PREFIX`` is the service's one environment prefix.
        app: the module holding ``run(ctx, config)`` (or ``build(ctx, config) -> ServiceApp`` when the service
            serves routes of its own), imported only when the service runs (listing services imports no
            aiodocker, psycopg, ...).
        summary: one line for ``inferwatch run --help`` and the README.
    """

    name: str
    port: int
    config: type[ServiceConfig]
    app: str
    summary: str

    @property
    def env_prefix(self) -> str:
        """``INFERWATCH_VLLM_``: every setting of this service, its host and port included."""
        return self.config.ENV_PREFIX

    @property
    def port_variable(self) -> str:
        """``INFERWATCH_VLLM_HTTP_PORT``: the variable that moves this service's HTTP port."""
        return self.env_prefix + "HTTP_PORT"

    def build(self, ctx: ServiceContext, config: Any) -> ServiceApp:
        """Import the service's module and build it for ``ctx``: its ``build(ctx, config)`` when it has one
        (extra routes, state shared with them), else its ``run(ctx, config)`` alone."""
        module = importlib.import_module(self.app)
        build = getattr(module, "build", None)
        if build is not None:
            app: ServiceApp = build(ctx, config)
            return app
        return ServiceApp(run=lambda: module.run(ctx, config))


def _http_app(
    ctx: ServiceContext,
    extra_routes: list[web.RouteDef],
    security: HttpSecurity | None = None,
    middlewares: list[Middleware] | None = None,
) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "service": ctx.name})

    async def readyz(_: web.Request) -> web.Response:
        ready = ctx.ready and ctx.bus.connected
        reason = ctx.reason if ctx.bus.connected else ctx.bus.status
        body = {"ready": ready, "reason": reason, "service": ctx.name, "nats": ctx.bus.status}
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(ctx.registry)
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    auth = [auth_middleware(security)] if security and security.auth_required else []
    app = web.Application(middlewares=[*auth, *(middlewares or [])])
    overridden = {r.path for r in extra_routes if isinstance(r, web.RouteDef)}
    defaults = [web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics)]
    app.add_routes([r for r in defaults if r.path not in overridden] + extra_routes)
    return app


def upstream_call_stats(ctx: ServiceContext) -> UpstreamCallStats | None:
    """This process's cumulative upstream calls and per-upstream breaker states (None: no call made yet)."""
    metrics = UpstreamMetrics.find(ctx.registry)
    if metrics is None or not (calls := metrics.calls()):
        return None
    return UpstreamCallStats(
        source=ctx.instance,
        observed_at=time.time(),
        collector=ctx.instance,
        interval_s=ctx.heartbeat_interval_s,
        service=ctx.name,
        endpoints=[
            EndpointCalls(
                api=call.api,
                endpoint=call.endpoint,
                outcomes={outcome.value: count for outcome, count in call.outcomes.items()},
                duration_sum_s=call.duration_sum_s,
            )
            for call in calls
        ],
        circuits={upstream: state.value for upstream, state in metrics.circuit_states().items()},
    )


async def _heartbeat_loop(ctx: ServiceContext) -> None:
    async def beat() -> None:
        if not ctx.bus.connected:
            return
        if (stats := upstream_call_stats(ctx)) is not None:
            await ctx.bus.publish(stats)
        await ctx.bus.publish(
            Heartbeat(
                source=ctx.instance,
                observed_at=time.time(),
                collector=ctx.instance,
                interval_s=ctx.heartbeat_interval_s,
                service=ctx.name,
                version=__version__,
                started_at=ctx.started_at,
                ready=ctx.ready,
                reason=ctx.reason,
                targets=ctx.targets,
            )
        )

    await run_every(ctx.heartbeat_interval_s, beat, ctx.sleep)


def http_address(spec: ServiceSpec, env: Env) -> tuple[str, int]:
    """Where ``spec`` serves HTTP: ``<prefix>HTTP_HOST`` (else ``INFERWATCH_HTTP_HOST``) and ``<prefix>HTTP_PORT``."""
    host = env.get(spec.env_prefix + "HTTP_HOST", env.get("INFERWATCH_HTTP_HOST", "127.0.0.1"))
    return host, env.int(spec.port_variable, spec.port)


async def run_service(
    spec: ServiceSpec,
    *,
    env: Env | None = None,
    on_app: Callable[[ServiceApp], None] | None = None,
) -> None:
    """Run one service until SIGTERM/SIGINT (or ``ctx.stop``), then shut down in order.

    Order: settings first (a bad one stops the service before anything starts, with the reason), then
    HTTP (so ``/healthz`` answers while NATS is still being reached), then the bus (retried with
    backoff), then the heartbeat and the service's ``run``. On stop: ``run`` is cancelled if it does not
    return within ``STOP_GRACE_S``, buffered publishes are flushed, the bus drained. ``on_app`` sees the built app
    (tests reach the service's state through it).

    Raises:
        SettingsError: the service's settings are invalid.
    """
    env = env or Env()
    name = spec.name
    configure_logging(name, level=env.get("INFERWATCH_LOG_LEVEL", "info"), fmt=env.get("INFERWATCH_LOG_FORMAT", "json"))
    config = spec.config.from_env(env)
    security = HttpSecurity.from_env(env)
    tls = security.ssl_context()
    registry = CollectorRegistry()
    inst = instance_id(name)
    ctx = ServiceContext(
        name=name,
        env=env,
        bus=Bus(BusSettings.from_env(env), name=inst),
        registry=registry,
        stop=asyncio.Event(),
        instance=inst,
        heartbeat_interval_s=env.float("INFERWATCH_HEARTBEAT_INTERVAL_S", 5.0),
    )
    registry.register(_BusCollector(ctx))
    app = spec.build(ctx, config)
    if on_app is not None:
        on_app(app)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, ctx.stop.set)

    host, port = http_address(spec, env)
    runner = web.AppRunner(_http_app(ctx, app.routes, security, app.middlewares), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    await site.start()
    auth = [
        m
        for m, on in (("basic", security.basic_password is not None), ("bearer", security.bearer_token is not None))
        if on
    ]
    log.info(
        "http listening",
        extra={
            "url": f"{'https' if tls else 'http'}://{host}:{_bound_port(runner) or port}",
            "auth": ",".join(auth) or "none",
            "auth_probes": security.protect_probes and bool(auth),
        },
    )

    connect = asyncio.create_task(ctx.bus.connect(stop=ctx.stop), name=f"{name}-connect")
    tasks: list[asyncio.Task[object]] = []
    try:
        stop_wait = asyncio.create_task(ctx.stop.wait())
        await asyncio.wait({connect, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        if ctx.stop.is_set() or connect.cancelled() or connect.exception() is not None:
            return
        tasks = [
            asyncio.create_task(app.run(), name=f"{name}-main"),
            asyncio.create_task(_heartbeat_loop(ctx), name=f"{name}-heartbeat"),
        ]
        stopper = asyncio.create_task(ctx.stop.wait())
        done, _ = await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        for task in done:
            if task is not stopper and not task.cancelled() and task.exception() is not None:
                log.error("service task failed", exc_info=task.exception())
    finally:
        # Reached on a clean stop and on cancellation alike: nothing of ours may outlive this.
        ctx.stop.set()
        connect.cancel()
        if tasks:
            # Bounded: a service stopped with its supervisor (SIGTERM on the parent's death) is gone in seconds.
            _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
        await asyncio.gather(connect, *tasks, return_exceptions=True)
        await ctx.bus.close()
        await runner.cleanup()
        log.info("stopped")


def _bound_port(runner: web.AppRunner) -> int | None:
    for addr in runner.addresses:
        if isinstance(addr, tuple) and len(addr) >= 2:
            return int(addr[1])
    return None
