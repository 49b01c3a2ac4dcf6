"""Render priority: the gate the HTTP loop holds while it serves a request and the ingest thread passes before
each message."""

from __future__ import annotations

import threading
import time

from inferwatch.services.aggregator import ingest
from inferwatch.services.aggregator.ingest import RenderGate


def test_an_open_gate_lets_the_ingest_thread_through_at_once() -> None:
    gate = RenderGate()
    gate.pass_()
    assert gate.pauses == 0


def test_the_ingest_thread_waits_while_a_request_is_served_and_goes_on_when_it_ends() -> None:
    gate = RenderGate()
    passed = threading.Event()

    def ingest_thread() -> None:
        gate.pass_()
        passed.set()

    with gate.hold():
        with gate.hold():  # two requests in flight: the gate opens when the last one ends
            worker = threading.Thread(target=ingest_thread)
            worker.start()
        assert not passed.wait(0.2), "the ingest thread went on while a request was served"
    assert passed.wait(5), "the ingest thread still waits after the request ended"
    worker.join(5)
    assert gate.pauses == 1


def test_after_a_pause_the_ingest_thread_goes_on_as_long_as_it_waited() -> None:
    now = [0.0]
    gate = RenderGate(clock=lambda: now[0])
    worker = threading.Thread(target=gate.pass_)
    with gate.hold():
        worker.start()
        time.sleep(0.05)
        now[0] = 2.0  # the request took 2 s (on the gate's clock)
    worker.join(5)
    with gate.hold():  # requests back to back: not waited on until 2 s more have passed
        now[0] = 3.9
        gate.pass_()
        assert gate.pauses == 1
        now[0] = 4.0
        worker = threading.Thread(target=gate.pass_)
        worker.start()
        time.sleep(0.05)
        assert worker.is_alive(), "its share used, the ingest thread waits again"
    worker.join(5)
    assert gate.pauses == 2


def test_a_request_that_never_ends_stops_ingest_for_at_most_max_pause_s(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(ingest, "MAX_PAUSE_S", 0.05)
    gate = RenderGate()
    with gate.hold():
        gate.pass_()  # returns after MAX_PAUSE_S
    assert gate.pauses == 1


def test_release_opens_the_gate_for_good() -> None:
    gate = RenderGate()
    with gate.hold():
        gate.release()
        gate.pass_()
    assert gate.pauses == 0
