"""Soak (slow tier): `inferwatch up --demo` for a bounded while; every process's memory stays flat.

Budget: INFERWATCH_SOAK_S seconds of steady state (default 60) after a warm-up, at a scale of
INFERWATCH_SOAK_VLLM_EXTRA simulated vLLM servers beyond the demo's four (default 100, scraped every
2 s). RSS of every process in the tree is sampled and printed; after warm-up none of ours may grow by more
than 10 %.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import free_port
from tests.support.system import descendant_pids

pytestmark = pytest.mark.slow


def _rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except OSError:
        return "?"


def test_demo_soak_memory_is_flat() -> None:
    soak_s = float(os.environ.get("INFERWATCH_SOAK_S", "60"))
    extra = int(os.environ.get("INFERWATCH_SOAK_VLLM_EXTRA", "100"))
    warmup_s = 25.0
    port = free_port()
    env = {
        **os.environ,
        "NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "INFERWATCH_VLLM_INTERVAL_S": "2",
        "INFERWATCH_DEMO_VLLM_EXTRA": str(extra),
        "INFERWATCH_LOG_LEVEL": "error",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "inferwatch", "up", "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    samples: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    scrapes = 0
    most_targets = 0
    try:
        start = time.monotonic()
        while time.monotonic() - start < warmup_s + soak_s:
            assert proc.poll() is None, "inferwatch up exited during the soak"
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
                response.raise_for_status()
                scrapes += 1
                most_targets = max(most_targets, response.text.count("\ninferwatch_vllm_up{"))
            except httpx.HTTPError:
                pass
            if time.monotonic() - start >= warmup_s:
                for pid in descendant_pids(proc.pid):
                    rss = _rss_kib(pid)
                    if rss is not None:
                        samples.setdefault(pid, []).append(rss)
                        names.setdefault(pid, _cmdline(pid))
            time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert scrapes > soak_s / 2
    print(f"\nsoak: {soak_s:.0f} s at {most_targets} vLLM targets, {scrapes} scrapes of the aggregator")
    assert most_targets >= 4 + extra  # the scale asked for was reached
    report = []
    for pid, rss in samples.items():
        if len(rss) < 5:
            continue
        first = sum(rss[:3]) / 3
        last = sum(rss[-3:]) / 3
        growth = (last - first) / first
        report.append((growth, pid, first, last))
        print(f"pid {pid} {names[pid]}: RSS {first / 1024:.1f} → {last / 1024:.1f} MiB ({growth:+.1%})")
    assert report, "no process was sampled"
    # nats-server is infrastructure, not ours: its Go heap and JetStream caches settle over minutes, so it
    # is reported above but not held to the 10 % bound.
    ours = [r for r in report if "nats-server" not in names[r[1]]]
    assert len(ours) >= 3
    worst = max(ours)
    assert worst[0] <= 0.10, f"RSS grew {worst[0]:.1%} in pid {worst[1]} ({names[worst[1]]})"
