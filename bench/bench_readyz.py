"""Every service's ``/readyz`` latency: idle vs under full load, in the same run.

Starts ``inferwatch up --demo`` (every collector, the aggregator and the simulators, collectors at 1 s
intervals) on a nats-server of our own, times ``--probes`` GET ``/readyz`` per service with the demo
running (baseline), then again while a publisher process floods the same NATS with small heartbeat
events at ``--rate`` per second (the aggregator ingests all of them; every collector keeps scraping).

Run: .venv/bin/python bench/bench_readyz.py [--rate 100000] [--probes 200] [--json PATH]
Goal (issue #8): every service's /readyz p99 <= 100 ms under load (readiness probes need < 1 s).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import percentile, report_goal, table, wait_ready, write_json  # noqa: E402
from bench.bench_scrape_under_load import _flood, _probe  # noqa: E402

_URL_LINE = re.compile(r"^(?:Aggregator|\s+(?P<name>[a-z-]+))\s+(?P<url>http://127\.0\.0\.1:\d+)")


def _service_urls(proc: subprocess.Popen[str]) -> dict[str, str]:
    """Read ``inferwatch up --verbose``'s banner: one base URL per service (listed before its settings)."""
    assert proc.stdout is not None
    urls: dict[str, str] = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("inferwatch up exited before printing its services")
        if line.startswith("Settings"):
            return urls
        match = _URL_LINE.match(line)
        if match:
            urls[match["name"] or "aggregator"] = match["url"]
    raise RuntimeError("inferwatch up did not print its services within 120 s")


def main() -> int:
    """Run the comparison and print (and write) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100_000, help="offered events/s during the load phase")
    parser.add_argument("--probes", type=int, default=200, help="GET /readyz per service and phase")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from inferwatch.shared.natsserver import EmbeddedNats
    from inferwatch.shared.ports import free_port

    with EmbeddedNats(jetstream=True) as server:
        env = {
            **os.environ,
            "NATS_URL": server.url,
            "INFERWATCH_LOG_LEVEL": "error",
            "INFERWATCH_VLLM_INTERVAL_S": "1",
            "PYTHONUNBUFFERED": "1",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "inferwatch", "up", "--demo", "--verbose", "--port", str(free_port())],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            urls = _service_urls(proc)
            if unready := wait_ready(urls, 90):
                raise RuntimeError(f"not ready after 90 s: {', '.join(unready)}")
            time.sleep(3)  # first scrapes done
            idle_probes = {name: _probe(url + "/readyz", args.probes) for name, url in urls.items()}
            ctx = mp.get_context("spawn")
            counter = ctx.Value("q", 0)
            flood_s = 8.0 + 0.01 * args.probes * len(urls)  # covers the probes of every service
            flooder = ctx.Process(target=_flood, args=(server.url, "heartbeat", flood_s, args.rate, counter))
            flooder.start()
            time.sleep(2)
            load_probes = {name: _probe(url + "/readyz", args.probes) for name, url in urls.items()}
            flooder.join(flood_s + 30)
            rate = counter.value / flood_s
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    idle = {name: lat for name, (lat, _) in idle_probes.items()}
    load = {name: lat for name, (lat, _) in load_probes.items()}
    not_ready = {name: not_ok for name, (_, not_ok) in load_probes.items()}
    rows = [
        {
            "service": name,
            "idle p50 ms": f"{percentile(idle[name], 0.5) * 1e3:.1f}",
            "idle p99 ms": f"{percentile(idle[name], 0.99) * 1e3:.1f}",
            "load p50 ms": f"{percentile(load[name], 0.5) * 1e3:.1f}",
            "load p99 ms": f"{percentile(load[name], 0.99) * 1e3:.1f}",
            "p99 ratio": f"{percentile(load[name], 0.99) / percentile(idle[name], 0.99):.2f}x",
            "not ready under load": f"{not_ready[name]}/{args.probes}",
        }
        for name in sorted(urls)
    ]
    if flooder.exitcode != 0 or not counter.value:
        # no flood, no figure: an idle probe must not pass for one under load
        print(f"the flood publisher failed (exit code {flooder.exitcode}, {counter.value} events sent): no goal figure")
        return 1
    print(f"{len(urls)} services; publisher offered {rate:,.0f} events/s during the load phase")
    print(table(rows, list(rows[0])))
    worst = max(urls, key=lambda name: percentile(load[name], 0.99))
    met = report_goal("readyz_services", percentile(load[worst], 0.99) * 1e3, f"worst: {worst}")
    if any(not_ready.values()):
        print("not ready = answered 503 (e.g. reconnecting after nats-server cut a slow consumer): an answer, timed")
    path = write_json(
        "readyz", {"offered_rate": rate, "idle": idle, "load": load, "not_ready": not_ready, "goal_met": met}, args.json
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
