"""What keeps ``inferwatch up``'s children running: restart with backoff, reap, stop in order.

A child that exits while the supervisor is not stopping is restarted after a delay that starts at
``Backoff.initial_s`` and doubles up to ``Backoff.max_s``; a child that then stays up for
``Backoff.reset_after_s`` starts again from the initial delay. A crash-looping child only ever delays
itself. Every exit is reaped (``Popen.poll``), logged with its status and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from inferwatch.contracts.supervisor import ChildState, SupervisedChild, SupervisorSnapshot
from inferwatch.shared import eventloop
from inferwatch.shared.bus import Bus, BusSettings
from inferwatch.shared.loop import run_every


@dataclass(frozen=True)
class Backoff:
    """Restart delays: ``initial_s`` doubling to ``max_s``, back to ``initial_s`` after ``reset_after_s`` up."""

    initial_s: float = 0.5
    max_s: float = 30.0
    reset_after_s: float = 60.0


@dataclass
class Child:
    """One supervised process and its restart bookkeeping.

    Attributes:
        name: what logs and the supervisor snapshot call it (``vllm-scraper``, ``nats-server``).
        start: starts the process (again) and returns it; a start that raises counts as an exit.
        restart: whether an exit is followed by a restart (the demo's simulators are not: their
            fresh ports would not be the ones the collectors were given).
        stop_last: stopped only after every other child has exited (NATS, which the others drain into).
        proc: the running process, ``None`` while waiting for a restart.
        restarts: restarts so far.
        last_exit: the last exit status (negative: killed by that signal), ``None`` before any.
        started_at: when the current process started (supervisor clock).
        restart_at: when the next start is due, while waiting.
        delay_s: the delay the next unexpected exit will wait.
    """

    name: str
    start: Callable[[], subprocess.Popen[bytes]]
    restart: bool = True
    stop_last: bool = False
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    last_exit: int | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    delay_s: float = 0.0

    @property
    def state(self) -> ChildState:
        """``running``, ``backoff`` (waiting to restart) or ``stopped``."""
        if self.proc is not None and self.proc.returncode is None:
            return "running"
        return "backoff" if self.restart_at is not None else "stopped"

    @property
    def pid(self) -> int:
        """The running process's PID, 0 when none runs."""
        return self.proc.pid if self.state == "running" and self.proc is not None else 0


def exit_description(code: int) -> str:
    """``exit status 2`` or ``signal SIGKILL`` for a ``Popen.returncode``."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
        return f"signal {-code}"
    return f"exit status {code}"


@dataclass
class Supervisor:
    """Starts children, restarts the ones that die, stops them all in reverse order.

    ``check`` does one pass and is called by the owner's loop every few hundred milliseconds; it never
    blocks longer than a child's ``start`` takes.
    """

    backoff: Backoff = field(default_factory=Backoff)
    clock: Callable[[], float] = time.monotonic
    log: TextIO = sys.stderr
    children: list[Child] = field(default_factory=list)
    stopping: bool = False

    def add(
        self,
        name: str,
        start: Callable[[], subprocess.Popen[bytes]],
        *,
        running: subprocess.Popen[bytes] | None = None,
        restart: bool = True,
        stop_last: bool = False,
    ) -> Child:
        """Supervise a child: ``running`` if it was started already, else started now by ``start``."""
        child = Child(name, start, restart=restart, stop_last=stop_last, delay_s=self.backoff.initial_s)
        self.children.append(child)
        if running is None:
            self._start(child)
        else:
            child.proc, child.started_at = running, self.clock()
        return child

    def child(self, name: str) -> Child:
        """The child called ``name``."""
        return next(c for c in self.children if c.name == name)

    def check(self) -> None:
        """Reap exits, schedule and run due restarts, reset the backoff of children that stayed up."""
        now = self.clock()
        for child in self.children:
            if self.stopping:
                return
            proc = child.proc
            if proc is not None and proc.poll() is not None:
                self._exited(child, proc.returncode, now)
            elif proc is not None and now - child.started_at >= self.backoff.reset_after_s:
                child.delay_s = self.backoff.initial_s
            if child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                self._start(child)

    def stop_all(self, timeout_s: float = 10.0) -> None:
        """Stop every child: first all but the ``stop_last`` ones, then those, each group SIGTERMed newest first,
        waited for up to ``timeout_s`` and SIGKILLed if still there.

        NATS is ``stop_last``: the services drain their publishes into it before it goes.
        """
        self.stopping = True
        for child in self.children:
            child.restart_at = None
        for last in (False, True):
            self._stop([c for c in reversed(self.children) if c.stop_last is last], timeout_s)

    def _stop(self, children: list[Child], timeout_s: float) -> None:
        running = [c.proc for c in children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        deadline = self.clock() + timeout_s
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - self.clock()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def _start(self, child: Child) -> None:
        child.restart_at = None
        child.started_at = self.clock()
        try:
            child.proc = child.start()
        except (OSError, RuntimeError) as exc:  # the binary vanished, a port is taken: retry like an exit
            child.proc = None
            print(f"inferwatch up: {child.name} failed to start: {exc}", file=self.log, flush=True)
            self._schedule(child, self.clock())

    def _exited(self, child: Child, code: int, now: float) -> None:
        child.last_exit = code
        child.proc = None
        if not child.restart:
            print(f"inferwatch up: {child.name} exited ({exit_description(code)}); not restarted", file=self.log)
            return
        delay = self._schedule(child, now)
        print(
            f"inferwatch up: {child.name} exited ({exit_description(code)}); "
            f"restart {child.restarts + 1} in {delay:.1f} s",
            file=self.log,
            flush=True,
        )

    def _schedule(self, child: Child, now: float) -> float:
        delay = child.delay_s
        child.restart_at = now + delay
        child.delay_s = min(delay * 2, self.backoff.max_s)
        return delay


def snapshot(supervisor: Supervisor, source: str, interval_s: float) -> SupervisorSnapshot:
    """The supervisor's children as the event the aggregator renders."""
    return SupervisorSnapshot(
        source=source,
        observed_at=time.time(),
        collector=source,
        interval_s=interval_s,
        children=[
            SupervisedChild(
                name=c.name, state=c.state, pid=c.pid, restarts_total=c.restarts, last_exit_code=c.last_exit
            )
            for c in supervisor.children
        ],
    )


class SnapshotPublisher:
    """Publishes the latest supervisor snapshot every ``interval_s`` from a thread with its own event loop.

    ``inferwatch up``'s loop is synchronous (it waits on processes), so NATS lives here; the bus
    reconnects by itself when the embedded server is restarted.
    """

    def __init__(self, settings: BusSettings, name: str, interval_s: float) -> None:
        self._settings, self._name, self.interval_s = settings, name, interval_s
        self._latest: SupervisorSnapshot | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(
            target=lambda: eventloop.run(self._main()), name="supervisor-publisher", daemon=True
        )

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()
        self._ready.wait(5)

    def offer(self, event: SupervisorSnapshot) -> None:
        """Make ``event`` the one published next."""
        with self._lock:
            self._latest = event

    def close(self, timeout_s: float = 3.0) -> None:
        """Publish what is pending, disconnect, join the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)

    async def _main(self) -> None:
        self._loop, stop = asyncio.get_running_loop(), asyncio.Event()
        self._stop = stop
        self._ready.set()
        bus = Bus(self._settings, name=self._name)

        async def publish_latest() -> None:
            with self._lock:
                event = self._latest
            if event is not None and bus.connected:
                await bus.publish(event)

        async def wait(seconds: float) -> bool:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)
            return stop.is_set()

        try:
            await bus.connect(stop=stop)
            await run_every(self.interval_s, publish_latest, wait)
        finally:
            await bus.close()
