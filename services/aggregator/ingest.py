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
import logging
import sys
import threading
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg

from inferwatch.shared.bus import Bus, BusSettings

log = logging.getLogger("inferwatch.aggregator.ingest")

Handler = Callable[[Msg], Awaitable[None]]
START_TIMEOUT_S = 30.0
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
        self._subscribed = threading.Event()
        self.error: BaseException | None = None

    async def start(self) -> None:
        """Start the thread; return once it has subscribed (or failed, re-raised here)."""
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self._thread = threading.Thread(target=self._main, name="aggregator-ingest", daemon=True)
        self._thread.start()
        # Waiting on a threading.Event must not block the HTTP loop: poll it from a worker thread.
        await asyncio.to_thread(self._subscribed.wait, START_TIMEOUT_S)
        if self.error is not None:
            raise self.error
        if not self._subscribed.is_set():
            raise TimeoutError(f"ingest thread did not subscribe within {START_TIMEOUT_S:.0f} s")

    async def stop(self) -> None:
        """Drain and close the ingest connection; join the thread."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, STOP_TIMEOUT_S)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported to start() or logged; the thread must not die silently
            self.error = exc
            log.error("ingest thread failed", exc_info=exc)
        finally:
            self._subscribed.set()

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = stop = asyncio.Event()
        handler, lock = self._handler, self._lock

        async def locked(msg: Msg) -> None:
            with lock:
                await handler(msg)

        try:
            await self.bus.connect(stop=stop)
            await self.bus.subscribe_raw(self._subject, locked)
            self._subscribed.set()
            await stop.wait()
        finally:
            await self.bus.close()
