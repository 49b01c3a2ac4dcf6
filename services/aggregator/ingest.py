"""Ingest on a thread of its own: a second NATS connection and event loop, so HTTP never waits behind a backlog.

Why a thread: nats-py's subscription task drains its whole pending queue without yielding, so on one
event loop a ``/metrics`` or ``/readyz`` request waits behind every message already received (9.4x the
idle ``/metrics`` p99 under a flood). Here the HTTP loop keeps the main thread; the ingest thread reads,
decodes and applies. The two share the aggregator's state under one `threading.Lock`: the ingest
callback takes it per message, the main thread for a render, a sweep, an alert tick or the status page.
While the main thread holds it the ingest thread sleeps on the lock (the GIL is released), so a render runs at
its idle speed; the rest of the time the main thread gets the GIL back within the interpreter's switch
interval (set to `SWITCH_INTERVAL_S` while the thread runs).

Render priority (`RenderGate`): while the HTTP loop serves a request, the ingest thread does not start the next
message; it waits (its whole event loop does), and what arrives meanwhile waits in the NATS client's pending
queue, the socket and nats-server's buffer for this connection (64 MB by default: past it, or past the server's
write deadline, the server cuts the connection, hence `MAX_PAUSE_S` and the fair share). So a request's handler,
the parts outside the lock included (``/readyz``, the status page, building the response), gets the GIL to itself;
the body write that follows does not hold the gate (a slow client would stop ingest for as long as it reads).
Pre-render (``prerender``): the ingest thread also renders the sources that changed, every ``prerender_s``, in
slices of at most `PRERENDER_SLICE_S` between messages, so a scrape under a flood of full snapshots serves those
renderings (at most a bounded time old) instead of rendering every source again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator

from nats.aio.msg import Msg

from inferwatch.shared import eventloop
from inferwatch.shared.bus import Bus, BusSettings

log = logging.getLogger("inferwatch.aggregator.ingest")

Handler = Callable[[Msg], None]
STOP_TIMEOUT_S = 5.0
# How long the HTTP thread can wait for the GIL while the ingest thread runs (CPython's default is 5 ms, and a
# request takes the GIL several times): bench_scrape_under_load, same machine, /readyz p99 under the flood
# 70 ms at 5 ms, 6-35 ms at 1 ms.
SWITCH_INTERVAL_S = 0.001
# The longest the ingest thread waits for one request: a request slower than this (a stuck client write) must not
# stop ingest, and its pending queue must not grow without bound.
MAX_PAUSE_S = 1.0
# The longest the ingest thread holds the lock to pre-render before taking the next message (a request waits at
# most this long behind it).
PRERENDER_SLICE_S = 0.005


class RenderGate:
    """Open unless the HTTP loop is serving a request: `hold` (HTTP loop) closes it for a request's duration,
    `pass_` (ingest thread) waits for it to open, at most `MAX_PAUSE_S`.

    Fair: after waiting, the ingest thread goes on for as long as it waited before it waits again, so requests
    back to back (a scraper polling a large ``/metrics`` without pause) get at most half of the time and
    cannot starve ingest into a slow-consumer cut; a request now and then gets all of it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._open = threading.Event()
        self._open.set()
        self._held = 0  # requests in flight; only the HTTP loop's thread touches it
        self._clock = clock
        self._free_until = 0.0  # the ingest thread does not wait before this (its share after a pause)
        self.pauses = 0  # times the ingest thread waited (read by the tests)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Keep the ingest thread paused while the block runs (nests: the gate opens when the last one ends)."""
        self._held += 1
        self._open.clear()
        try:
            yield
        finally:
            self._held -= 1
            if self._held == 0:
                self._open.set()

    def pass_(self) -> None:
        """Return at once while open; else wait until it opens or `MAX_PAUSE_S` passed."""
        if not self._open.is_set():
            start = self._clock()
            if start < self._free_until:
                return
            self.pauses += 1
            self._open.wait(MAX_PAUSE_S)
            end = self._clock()
            self._free_until = end + (end - start)

    def release(self) -> None:
        """Open for good (stopping: the ingest thread must not wait on a request that will not end)."""
        self._held = 0
        self._open.set()


class IngestThread:
    """Subscribe ``subject`` on a connection and event loop of its own; ``handler`` runs under ``lock``, after
    ``gate`` (if any) let it; ``prerender(deadline)`` (if any) runs under ``lock`` after a message, every
    ``prerender_s``, and returns whether work is left (then it runs again after the next message)."""

    def __init__(
        self,
        settings: BusSettings,
        name: str,
        subject: str,
        handler: Handler,
        lock: threading.Lock,
        *,
        gate: RenderGate | None = None,
        prerender: Callable[[float], bool] | None = None,
        prerender_s: float = 0.0,
    ) -> None:
        self.bus = Bus(settings, name=name)
        self._subject = subject
        self._handler = handler
        self._lock = lock
        self._gate = gate
        self._prerender = prerender if prerender_s > 0 else None
        self._prerender_s = prerender_s
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
        if self._gate is not None:
            self._gate.release()
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
        handler, lock, gate, prerender, every = (
            self._handler,
            self._lock,
            self._gate,
            self._prerender,
            self._prerender_s,
        )
        monotonic = time.monotonic
        due = monotonic() + every

        def prerender_slice() -> None:  # under the lock
            nonlocal due
            assert prerender is not None
            left = prerender(monotonic() + PRERENDER_SLICE_S)
            due = monotonic() + (0.0 if left else every)

        async def locked(msg: Msg) -> None:
            if gate is not None:
                gate.pass_()
            with lock:
                handler(msg)
                if prerender is not None and monotonic() >= due:
                    prerender_slice()

        async def prerender_when_quiet() -> None:
            # Under a flood the subscription task runs message after message without yielding, and `locked`
            # pre-renders; when messages stop, this renders what the last ones changed.
            while True:
                await asyncio.sleep(max(due - monotonic(), PRERENDER_SLICE_S))
                if monotonic() >= due:
                    if gate is not None:
                        gate.pass_()
                    with lock:
                        prerender_slice()

        quiet = asyncio.create_task(prerender_when_quiet()) if prerender is not None else None
        try:
            await self.bus.connect(stop=stop)
            await self.bus.subscribe_raw(self._subject, locked)
            self._on_started()
            await stop.wait()
        finally:
            if quiet is not None:
                quiet.cancel()
            await self.bus.close()
