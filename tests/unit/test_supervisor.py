"""inferwatch up's supervisor on a fake clock and fake processes: restarts, backoff, reset, order of stopping."""

from __future__ import annotations

import io
import itertools

from inferwatch.contracts import decode, encode
from inferwatch.supervisor import Backoff, Supervisor, exit_description, snapshot

_pids = itertools.count(100)


class FakeProcess:
    """What the supervisor uses of ``subprocess.Popen``."""

    def __init__(self, stopped: list[int] | None = None) -> None:
        self.pid = next(_pids)
        self.returncode: int | None = None
        self.stopped = stopped if stopped is not None else []

    def poll(self) -> int | None:
        return self.returncode

    def die(self, code: int) -> None:
        self.returncode = code

    def terminate(self) -> None:
        self.stopped.append(self.pid)
        self.returncode = -15

    def kill(self) -> None:
        self.returncode = -9

    def wait(self, timeout: float | None = None) -> int | None:
        return self.returncode


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def supervisor(clock: Clock) -> tuple[Supervisor, io.StringIO]:
    log = io.StringIO()
    return Supervisor(backoff=Backoff(initial_s=0.5, max_s=4.0, reset_after_s=60.0), clock=clock, log=log), log


def test_a_dead_child_is_restarted_after_a_doubling_delay_capped_at_the_maximum() -> None:
    clock = Clock()
    sup, log = supervisor(clock)
    procs: list[FakeProcess] = []

    def start() -> FakeProcess:
        procs.append(FakeProcess())
        return procs[-1]

    child = sup.add("vllm-scraper", start)  # type: ignore[arg-type]
    restart_times = []
    for _ in range(6):
        procs[-1].die(-9)
        sup.check()  # reaped: waiting
        assert child.state == "backoff"
        died_at = clock.now
        while child.state != "running":
            clock.now += 0.25  # exact in binary: the delays below compare exactly
            sup.check()
        restart_times.append(clock.now - died_at)
    assert restart_times == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert child.restarts == 6
    assert child.last_exit == -9
    assert "vllm-scraper exited (signal SIGKILL); restart 1 in 0.5 s" in log.getvalue()


def test_a_minute_of_health_resets_the_backoff() -> None:
    clock = Clock()
    sup, _ = supervisor(clock)
    procs: list[FakeProcess] = []
    child = sup.add("aggregator", lambda: procs.append(FakeProcess()) or procs[-1])  # type: ignore[arg-type, func-returns-value]
    for _ in range(3):  # delays 0.5, 1, 2: the next would be 4
        procs[-1].die(1)
        sup.check()
        clock.now += 2.0
        sup.check()
    assert child.delay_s == 4.0
    clock.now += 61.0
    sup.check()
    assert child.delay_s == 0.5


def test_a_crash_looping_child_never_stops_the_others() -> None:
    clock = Clock()
    sup, _ = supervisor(clock)
    healthy = FakeProcess()
    sup.add("aggregator", lambda: healthy)  # type: ignore[arg-type, return-value]
    looping = sup.add("litellm-poller", lambda: FakeProcess(), running=None)  # type: ignore[arg-type, return-value]
    for _ in range(50):
        if looping.proc is not None:
            looping.proc.returncode = 2
        clock.now += 0.3
        sup.check()
    assert healthy.returncode is None
    assert sup.child("aggregator").restarts == 0
    assert sup.child("aggregator").state == "running"
    assert 4 <= looping.restarts <= 8  # 15 s of backoff 0.5, 1, 2, 4, 4...


def test_a_child_not_to_restart_stays_stopped() -> None:
    clock = Clock()
    sup, log = supervisor(clock)
    sim = FakeProcess()
    child = sup.add("simulators", lambda: sim, restart=False)  # type: ignore[arg-type, return-value]
    sim.die(1)
    clock.now += 10
    sup.check()
    sup.check()
    assert (child.state, child.restarts) == ("stopped", 0)
    assert "not restarted" in log.getvalue()


def test_stop_all_stops_newest_first_nats_after_everything_and_nothing_restarts_after() -> None:
    clock = Clock()
    sup, _ = supervisor(clock)
    stopped: list[int] = []
    procs = [FakeProcess(stopped) for _ in range(4)]
    sup.add("simulators", lambda: procs[0], restart=False)  # type: ignore[arg-type, return-value]
    sup.add("nats-server", lambda: procs[1], stop_last=True)  # type: ignore[arg-type, return-value]
    sup.add("aggregator", lambda: procs[2])  # type: ignore[arg-type, return-value]
    sup.add("vllm-scraper", lambda: procs[3])  # type: ignore[arg-type, return-value]
    sup.stop_all(timeout_s=1)
    assert stopped == [procs[3].pid, procs[2].pid, procs[0].pid, procs[1].pid]
    clock.now += 100
    sup.check()
    assert all(c.state == "stopped" and c.restarts == 0 for c in sup.children)


def test_a_start_that_fails_is_retried_like_an_exit() -> None:
    clock = Clock()
    sup, log = supervisor(clock)
    attempts = []

    def start() -> FakeProcess:
        attempts.append(clock.now)
        if len(attempts) < 3:
            raise OSError("address in use")
        return FakeProcess()

    child = sup.add("nats-server", start)  # type: ignore[arg-type]
    for _ in range(40):
        clock.now += 0.1
        sup.check()
    assert child.state == "running"
    assert [round(t, 1) for t in attempts] == [0.0, 0.5, 1.5]
    assert "failed to start: address in use" in log.getvalue()


def test_the_snapshot_carries_every_child_and_round_trips() -> None:
    clock = Clock()
    sup, _ = supervisor(clock)
    dead = FakeProcess()
    sup.add("nats-server", lambda: FakeProcess())  # type: ignore[arg-type, return-value]
    sup.add("vllm-scraper", lambda: dead)  # type: ignore[arg-type, return-value]
    dead.die(-9)
    sup.check()
    event = snapshot(sup, "up@host:1", 5.0)
    assert [(c.name, c.state, c.last_exit_code) for c in event.children] == [
        ("nats-server", "running", None),
        ("vllm-scraper", "backoff", -9),
    ]
    assert event.children[1].pid == 0
    assert decode(encode(event)) == event


def test_exit_descriptions() -> None:
    assert exit_description(2) == "exit status 2"
    assert exit_description(-9) == "signal SIGKILL"
    assert exit_description(-200) == "signal 200"
