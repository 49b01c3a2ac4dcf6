"""vllm-scraper vs a real Prometheus: CPU seconds per scrape cycle of N simulated vLLM targets.

Both run in the same time window against the same simulated servers (``python -m inferwatch.simulators.vllm``,
a separate process whose CPU is not counted): our scraper (``inferwatch run vllm-scraper``,
publishing to a local nats-server) and ``prometheus`` with the same targets in ``static_configs``.
CPU is read from ``/proc/<pid>/stat`` (user + system). Bounded: warm-up plus ``--cycles`` intervals.

Note what each does per target and cycle: Prometheus GETs ``/metrics`` and stores every sample in
its TSDB; the scraper GETs ``/metrics`` and ``/health`` (``/v1/models`` and ``/version`` are cached
for 60 s), keeps only the vLLM families and publishes one snapshot on NATS.

    .venv/bin/python -m bench.bench_scrape --targets 1000 --interval 15 --cycles 4 [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from bench._common import report_goal, write_json
from inferwatch.shared.natsserver import EmbeddedNats
from inferwatch.shared.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (children not included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def start_simulators(count: int) -> tuple[subprocess.Popen[str], list[str]]:
    """Serve ``count`` simulated vLLM servers in a child process; return it and their URLs."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "inferwatch.simulators.vllm", "--count", str(count)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    urls: list[str] = []
    while len(urls) < count:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("simulators exited early")
        urls.append(line.split("\t", 1)[0])
    return proc, urls


class SnapshotCounter:
    """Counts the scraper's snapshots (and how many say ``up``) on NATS, from a thread of its own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.total = 0
        self.up = 0
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._subscribe(), self._loop).result(10)

    async def _subscribe(self) -> None:
        import nats

        from inferwatch.contracts import decode, type_filter
        from inferwatch.contracts.vllm import VllmInstanceSnapshot

        async def on_msg(msg: Any) -> None:
            event = decode(msg.data)
            if isinstance(event, VllmInstanceSnapshot):
                self.total += 1
                self.up += 1 if event.up else 0

        self._nc = await nats.connect(self.url)
        await self._nc.subscribe(type_filter(VllmInstanceSnapshot), cb=on_msg)

    def read(self) -> tuple[int, int]:
        """(snapshots, of which up) so far."""
        return self.total, self.up

    def close(self) -> None:
        """Disconnect and stop the thread's loop."""
        asyncio.run_coroutine_threadsafe(self._nc.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


def prometheus_up(port: int) -> tuple[float, float]:
    """(targets, targets up) as Prometheus sees them."""

    def query(q: str) -> float:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(q)}", timeout=5
        ) as r:
            result = json.loads(r.read())["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0

    return query("count(up)"), query("sum(up)")


def main(argv: list[str] | None = None) -> None:
    """Run the comparison and print (and optionally write) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=15.0)
    parser.add_argument("--cycles", type=int, default=4)
    parser.add_argument("--warmup-cycles", type=int, default=1)
    parser.add_argument("--json", default=None, help="write the figures to this file (default bench/results/)")
    args = parser.parse_args(argv)
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        sys.exit("needs the Debian package prometheus (apt-get install prometheus)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-scrape-"))
    procs: list[subprocess.Popen[str]] = []
    with EmbeddedNats() as nats:
        try:
            sims, urls = start_simulators(args.targets)
            procs.append(sims)
            hostports = [u.removeprefix("http://") for u in urls]
            config = tmp / "prometheus.yml"
            config.write_text(
                json.dumps(
                    {
                        "global": {"scrape_interval": f"{args.interval:g}s", "scrape_timeout": "5s"},
                        "scrape_configs": [{"job_name": "vllm", "static_configs": [{"targets": hostports}]}],
                    }
                )
            )
            prom_port = free_port()
            prom = subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                    "--log.level=warn",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            procs.append(prom)
            ours_port = free_port()
            env = {
                **os.environ,
                "NATS_URL": nats.url,
                "INFERWATCH_VLLM_TARGETS": ",".join(urls),
                "INFERWATCH_VLLM_INTERVAL_S": f"{args.interval:g}",
                "INFERWATCH_VLLM_SHARD": "0",
                "INFERWATCH_VLLM_HTTP_PORT": str(ours_port),
                "INFERWATCH_LOG_LEVEL": "warning",
                "PYTHONPATH": str(ROOT),
            }
            ours = subprocess.Popen(
                [sys.executable, "-m", "inferwatch", "run", "vllm-scraper"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            procs.append(ours)
            counter = SnapshotCounter(nats.url)
            deadline = time.monotonic() + 120
            while counter.read()[0] == 0 and time.monotonic() < deadline:  # started and scraping
                time.sleep(0.2)
            time.sleep(args.interval * args.warmup_cycles)
            start = (cpu_seconds(ours.pid), cpu_seconds(prom.pid), cpu_seconds(sims.pid), time.monotonic())
            snaps_start = counter.read()
            time.sleep(args.interval * args.cycles)
            end = (cpu_seconds(ours.pid), cpu_seconds(prom.pid), cpu_seconds(sims.pid), time.monotonic())
            snaps_end = counter.read()
            prom_targets, prom_targets_up = prometheus_up(prom_port)
            with urllib.request.urlopen(f"http://127.0.0.1:{ours_port}/metrics", timeout=5) as r:
                own_lines = r.read().decode().splitlines()
            own = {
                line.split(" ")[0]: float(line.split(" ")[1])
                for line in own_lines
                if line.startswith("inferwatch_bus_")
            }
            # requests that failed, by endpoint and outcome (a scraper whose targets are not all up says why)
            failed = {
                line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in own_lines
                if line.startswith("inferwatch_upstream_requests_total{") and 'outcome="ok"' not in line
            }
            counter.close()
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
            shutil.rmtree(tmp, ignore_errors=True)
    window = end[3] - start[3]
    cycles = window / args.interval
    ours_cycle = (end[0] - start[0]) / cycles
    prom_cycle = (end[1] - start[1]) / cycles
    snapshots = (snaps_end[0] - snaps_start[0]) / cycles
    # A scraper that falls behind publishes fewer snapshots and so spends less: the goal compares CPU per
    # target scraped (a snapshot, up or not), which is the per-cycle ratio whenever every target was scraped.
    per_target = (ours_cycle / snapshots) / (prom_cycle / args.targets) if snapshots and prom_cycle else None
    result = {
        "targets": args.targets,
        "interval_s": args.interval,
        "window_s": round(window, 1),
        "ours_cpu_s_per_cycle": round(ours_cycle, 3),
        "prometheus_cpu_s_per_cycle": round(prom_cycle, 3),
        "ratio_ours_over_prometheus": round(ours_cycle / prom_cycle, 2) if prom_cycle else None,
        "ratio_per_target_scraped": round(per_target, 2) if per_target is not None else None,
        "ours_cpu_share_of_one_core": round(ours_cycle / args.interval, 3),
        "simulators_cpu_s_per_cycle": round((end[2] - start[2]) / cycles, 3),
        "ours_snapshots_per_cycle": round((snaps_end[0] - snaps_start[0]) / cycles, 1),
        "ours_snapshots_up_per_cycle": round((snaps_end[1] - snaps_start[1]) / cycles, 1),
        "prometheus_targets": prom_targets,
        "prometheus_targets_up": prom_targets_up,
        "ours_bus_published_total": own.get("inferwatch_bus_published_total"),
        "ours_bus_publish_dropped_total": own.get("inferwatch_bus_publish_dropped_total"),
        "ours_failed_requests": failed,
    }
    print(f"{args.targets} targets @ {args.interval:g}s, {cycles:.1f} cycles measured together:")
    print(f"  vllm-scraper : {ours_cycle:.3f} CPU s / cycle ({100 * ours_cycle / args.interval:.1f}% of a core)")
    print(f"  prometheus   : {prom_cycle:.3f} CPU s / cycle (baseline, same run)")
    print(
        f"  ratio ours/prometheus: {result['ratio_ours_over_prometheus']} per cycle, "
        f"{result['ratio_per_target_scraped']} per target scraped"
    )
    if snapshots < 0.95 * args.targets:
        print(f"  NOTE: the scraper published {snapshots:.0f} of {args.targets} snapshots per cycle (fell behind)")
    print(f"  (simulators: {result['simulators_cpu_s_per_cycle']} CPU s / cycle, not counted)")
    print(
        f"  work done: ours {result['ours_snapshots_per_cycle']} snapshots/cycle "
        f"({result['ours_snapshots_up_per_cycle']} up); prometheus {prom_targets:g} targets ({prom_targets_up:g} up)"
    )
    print(
        f"  scraper bus: published {result['ours_bus_published_total']}, "
        f"dropped {result['ours_bus_publish_dropped_total']}"
    )
    for series, count in failed.items():
        print(f"  failed requests: {series} {count:g}")
    ratio = result["ratio_per_target_scraped"]
    if ratio is not None:
        detail = (
            f"{1000 * ours_cycle / snapshots:.2f} vs {1000 * prom_cycle / args.targets:.2f} CPU ms per target scraped; "
            f"{ours_cycle:.2f} vs {prom_cycle:.2f} CPU s per cycle of {args.targets} targets"
        )
        report_goal("scrape_cpu", ratio, detail)
        report_goal("scrape_cpu_floor", ratio, detail)
    out = write_json("scrape", result, args.json)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
