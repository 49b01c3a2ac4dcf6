"""`inferwatch up --demo` keeps running when its parts die: each is restarted, and `up` itself leaves no orphan."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import free_port
from tests.support.system import alive, descendant_pids, run_demo

pytestmark = [pytest.mark.system, pytest.mark.slow, pytest.mark.timeout(240)]

RECOVERY_S = 10.0  # the bound: a killed part's series are back within this


def _cmdline(pid: int) -> list[str]:
    try:
        return [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return []


def _pid_of(up: int, matches: Callable[[list[str]], bool]) -> int:
    pids = [p for p in descendant_pids(up) if alive(p) and matches(_cmdline(p))]
    assert len(pids) == 1, f"expected one matching child of inferwatch up, found {pids}"
    return pids[0]


def _service(name: str) -> Callable[[list[str]], bool]:
    return lambda argv: argv[-2:] == ["run", name]


def _samples(port: int) -> list[tuple[str, dict[str, str], float]]:
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return []
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(body) for s in f.samples]


def _restarts(samples: list[tuple[str, dict[str, str], float]]) -> dict[str, float]:
    return {
        labels["child"]: value
        for name, labels, value in samples
        if name == "inferwatch_supervisor_child_restarts_total"
    }


def _fresh_vllm(samples: list[tuple[str, dict[str, str], float]], since: float) -> int:
    """How many vLLM sources have a snapshot observed after ``since`` (Unix seconds)."""
    return sum(
        1
        for name, labels, value in samples
        if name == "inferwatch_source_last_seen_timestamp_seconds" and labels.get("domain") == "vllm" and value > since
    )


def _wait(
    port: int, what: str, ok: Callable[[list[tuple[str, dict[str, str], float]]], bool], timeout_s: float
) -> float:
    """Seconds until ``ok`` holds for the aggregator's samples; fails after ``timeout_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if ok(_samples(port)):
            return time.monotonic() - started
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout_s} s; restarts seen: {_restarts(_samples(port))}")


def test_every_part_killed_in_turn_comes_back_and_up_leaves_no_orphan() -> None:
    port = free_port()
    extra = {
        "INFERWATCH_HEARTBEAT_INTERVAL_S": "1",
        "INFERWATCH_LITELLM_INTERVAL_S": "often",  # a setting that makes litellm-poller exit at every start
        "INFERWATCH_SIM_CALM": "1",
    }
    # nothing listens at that NATS URL: `up` runs its own server
    with run_demo(f"nats://127.0.0.1:{free_port()}", port, extra) as up:
        _wait(port, "vLLM series and the supervisor snapshot", lambda s: _fresh_vllm(s, 0) >= 3 and _restarts(s), 90)

        # The crash-looping collector backs off and stops nobody else.
        _wait(port, "litellm-poller restarted twice", lambda s: _restarts(s).get("litellm-poller", 0) >= 2, 15)
        others = {k: v for k, v in _restarts(_samples(port)).items() if k != "litellm-poller"}
        assert others, "no other child reported"
        assert not any(others.values()), others

        timings = {}
        for child, matches in (
            ("vllm-scraper", _service("vllm-scraper")),
            ("aggregator", _service("aggregator")),
            ("nats-server", lambda argv: bool(argv) and Path(argv[0]).name == "nats-server"),
        ):
            before = _restarts(_samples(port)).get(child, 0)
            os.kill(_pid_of(up.pid, matches), signal.SIGKILL)
            killed_at = time.time()
            timings[child] = _wait(
                port,
                f"{child} restarted and every vLLM source fresh again",
                lambda s, c=child, b=before, t=killed_at: _restarts(s).get(c, 0) == b + 1 and _fresh_vllm(s, t) >= 3,
                RECOVERY_S,
            )
        print(f"\nrecovery after SIGKILL, seconds: { ({k: round(v, 1) for k, v in timings.items()}) }")

        # `up` itself SIGKILLed: every child, nats-server included, dies with it.
        family = {p for p in descendant_pids(up.pid) if alive(p)}
        assert len(family) >= 9  # 8 services (the crash-looping one may be waiting), simulators, nats-server
        assert any(Path(_cmdline(p)[0]).name == "nats-server" for p in family if _cmdline(p))
        up.kill()
        up.wait(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(alive(p) for p in family):
            time.sleep(0.1)
        left = {p: _cmdline(p) for p in family if alive(p)}
        assert not left, f"outlived inferwatch up by 5 s: {left}"
