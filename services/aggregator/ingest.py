"""Ingest on a thread of its own: a second NATS connection and event loop, so HTTP never waits behind a backlog.

Why a thread: nats-py's subscription task drains its whole pending queue without yielding, so on one
event loop a ``/metrics`` or ``/readyz`` request waits behind every message already received (9.4x the
idle ``/metrics`` p99 under a flood). Here the HTTP loop keeps the main thread; the ingest thread reads,
decodes and applies. The two share the aggregator's state under one `threading.Lock`: the ingest
callback takes it per message, the main thread for a render, a sweep, an alert tick or the status page.
While the main thread holds it the ingest thread sleeps on the lock (the GIL is released), so a render runs at
its idle speed; the rest of the time the main thread gets the GIL back within the interpreter's switch
interval (set to `SWITCH_INTERVAL_S` while the thread runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg

from inferwatch.shared import eventloop
from inferwatch.shared.bus import Bus, BusSettings

log = logging.getLogger("inferwatch.aggregator.ingest")

Handler = Callable[[Msg], Awaitable[None]]
STOP_TIMEOUT_S = 5.0
# How long the HTTP thread can wait for the GIL while the ingest thread runs (CPython's default is 5 ms, and a
# request takes the GIL several times): bench_scrape_under_load, same machine, /readyz p99 under the flood
# 70 ms at 5 ms, 6-35 ms at 1 ms.
SWITCH_INTERVAL_S = 0.001


class IngestThread:
    """Subscribe ``subject`` on a connection and event loop of its own; ``handler`` runs under ``lock``."""

    def __init__(self, settings: BusSettings, name: str, subject: str, handler: Handler, lock: threading.Lock) -> None:
        self.bus = Bus(settings, name=name)
        self._subject = subject
        self._handler = handler
        self._lock = lock
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._on_started: Callable[[], None] = lambda: None
        self._stopping = threading.Event()
        self.error: BaseException | None = None

    async def start(self) -> None:
        """Start the thread; return once it has subscribed (the connection is retried with backoff, as the
        service's own is). Raises what the thread failed with, if it did."""
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        started = asyncio.Event()
        caller = asyncio.get_running_loop()

        def signal_started() -> None:  # from the ingest thread: subscribed, failed or stopped
            with contextlib.suppress(RuntimeError):  # the caller's loop is gone: nobody waits
                caller.call_soon_threadsafe(started.set)

        self._on_started = signal_started
        self._thread = threading.Thread(target=self._main, name="aggregator-ingest", daemon=True)
        self._thread.start()
        await started.wait()
        if self.error is not None:
            raise self.error

    async def stop(self) -> None:
        """Drain and close the ingest connection; join the thread. Safe before, during and after `start`."""
        self._stopping.set()  # before reading the loop: _run checks it after publishing its loop
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing left to stop
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, STOP_TIMEOUT_S)

    def _main(self) -> None:
        try:
            eventloop.run(self._run())
        except asyncio.CancelledError:  # stopped while still connecting
            pass
        except BaseException as exc:  # reported to start() and logged; the thread must not die silently
            self.error = exc
            log.error("ingest thread failed", exc_info=exc)
        finally:
            self._on_started()

    async def _run(self) -> None:
        self._stop = stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self._stopping.is_set():
            stop.set()
        handler, lock = self._handler, self._lock

        async def locked(msg: Msg) -> None:
            with lock:
                await handler(msg)

        try:
            await self.bus.connect(stop=stop)
            await self.bus.subscribe_raw(self._subject, locked)
            self._on_started()
            await stop.wait()
        finally:
            await self.bus.close()
