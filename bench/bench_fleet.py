"""A realistic fleet, watched for minutes: inferwatch's whole cost beside Prometheus scraping the same endpoints.

The fleet (every part simulated, in processes not counted on either side): 200 vLLM servers of mixed versions
(``simulators/vllm/fleet.py``: V1 0.33, V1 0.10, V0 0.6, V0 0.5; a quarter of the V1 ones with 2 engines),
2 LiteLLM proxies, 1 Langfuse project, 1 llm-d EPP serving 2 InferencePools, and 8 GPU hosts of 8 fake-NVML GPUs
each. It is ``inferwatch up --demo`` with ``INFERWATCH_DEMO_VLLM_EXTRA=196`` (its gpu-agent is host 0), plus 7 more
gpu-agents, one per further host, all on a nats-server the bench starts. The demo also brings its Docker host (a
few more vLLM containers, discovered by docker-watcher, one killed and restarted now and then) and the Hugging Face
API for model-catalog; their collectors count as ours and Prometheus is given those vLLM containers as well.

Ours: every process of the ``inferwatch up`` tree except the simulators (supervisor, aggregator, every collector),
the 7 extra gpu-agents and the nats-server. Prometheus 2.42 (Debian's ``prometheus``) gets a generated config:
the 200 vLLM ``/metrics``, both LiteLLM proxies' ``/metrics/`` (with their keys) and the EPP's ``/metrics`` (with
its token), every 15 s. Both run over the same window of ``--duration`` seconds after a warm-up.

Measured: CPU seconds (``/proc/<pid>/stat`` user + system, summed over the processes, those started or
restarted in the window included), RSS and PSS (``/proc/<pid>/smaps_rollup``; PSS shares the pages our Python
processes have in common instead of counting them once per process) sampled every ``--sample-s``; the aggregator's
``/metrics`` latency, GET every ``--probe-s``; freshness: for each source, from ``observed_at`` (its collector's
clock) to the first of those GETs that shows it, so its resolution is ``--probe-s`` plus one GET (an upper bound).
Those GETs cost the aggregator CPU that Prometheus, scraping it every 15 s, would not: it is counted in ours.

    .venv/bin/python -m bench.bench_fleet [--duration 300] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml  # type: ignore[import-untyped]

from bench._common import percentile, report_goal, table, wait_ready, write_json
from bench.bench_scrape import TICKS, prometheus_up
from inferwatch.services import SERVICES
from inferwatch.shared.natsserver import EmbeddedNats
from inferwatch.shared.ports import free_port
from tests.support import service_process, stop_processes
from tests.support.system import descendant_pids

ROOT = Path(__file__).resolve().parent.parent
VLLM_TARGETS = 200
GPU_HOSTS = 8
GPUS_PER_HOST = 8
INTERVAL_S = 15.0  # Prometheus's scrape interval and our collectors' (vLLM, LiteLLM, EPP)
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 1e6
_LAST_SEEN = re.compile(
    rb"^inferwatch_source_last_seen_timestamp_seconds\{([^}]*)\} (\S+)", re.MULTILINE
)  # one line per source


@dataclass
class ProcessUsage:
    """One process's CPU over the window (first and last reading) and its memory samples."""

    name: str
    cpu_first: float
    cpu_last: float
    rss_mb: list[float] = field(default_factory=list)


def _read_proc(pid: int) -> tuple[float, float, float] | None:
    """(CPU seconds, RSS MB, PSS MB) of one process; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    pss_kb = next((int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), 0)
    return (int(fields[11]) + int(fields[12])) / TICKS, int(fields[21]) * PAGE_MB, pss_kb / 1e3


def _process_name(pid: int) -> str:
    """``aggregator``, ``vllm-scraper``, ... for ``inferwatch run NAME``; ``supervisor``; ``nats-server``."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    if "run" in args and args.index("run") + 1 < len(args):
        return args[args.index("run") + 1]
    if "up" in args:
        return "supervisor"
    return Path(args[0]).name or "?"


class Meter:
    """Samples a changing set of processes every ``period_s`` from a thread: CPU over the window, RSS/PSS sums."""

    def __init__(self, pids_of: Any, period_s: float) -> None:
        self._pids_of = pids_of  # () -> set of PIDs to count now (re-read each sample: restarts are counted)
        self._period_s = period_s
        self.usage: dict[int, ProcessUsage] = {}
        self.rss_sums: list[float] = []
        self.pss_sums: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        """First sample now (the window's start), then one every period."""
        self._sample()
        self._thread.start()

    def stop(self) -> None:
        """Last sample now (the window's end)."""
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            self._sample()

    def _sample(self) -> None:
        rss = pss = 0.0
        first = not self.rss_sums  # the window's start: every process counts from its reading now
        for pid in self._pids_of():
            reading = _read_proc(pid)
            if reading is None:
                continue
            cpu, rss_mb, pss_mb = reading
            usage = self.usage.get(pid)
            if usage is None:  # a process born in the window counts from 0; one there at the start from its reading
                usage = self.usage[pid] = ProcessUsage(_process_name(pid), cpu if first else 0.0, cpu)
            usage.cpu_last = cpu
            usage.rss_mb.append(rss_mb)
            rss += rss_mb
            pss += pss_mb
        self.rss_sums.append(rss)
        self.pss_sums.append(pss)

    def cpu_by_name(self) -> dict[str, float]:
        """CPU seconds in the window, by process name."""
        out: dict[str, float] = {}
        for usage in self.usage.values():
            out[usage.name] = out.get(usage.name, 0.0) + usage.cpu_last - usage.cpu_first
        return out

    def rss_by_name(self) -> dict[str, float]:
        """Mean RSS (MB) over the samples, summed by process name."""
        out: dict[str, float] = {}
        for usage in self.usage.values():
            out[usage.name] = out.get(usage.name, 0.0) + sum(usage.rss_mb) / len(usage.rss_mb)
        return out


class MetricsProbe:
    """GETs the aggregator's ``/metrics`` every ``period_s``: latency of each, and each source's freshness."""

    def __init__(self, url: str, period_s: float) -> None:
        self._url = url
        self._period_s = period_s
        self.latencies: list[float] = []
        self.freshness: list[float] = []  # seconds from a source's observed_at to the first GET showing it
        self.errors = 0
        self.bytes = 0
        self._seen: dict[bytes, bytes] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        """Start probing."""
        self._thread.start()

    def stop(self) -> None:
        """Stop probing."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while True:
                started = time.perf_counter()
                try:
                    response = client.get(self._url)
                    response.raise_for_status()
                except httpx.HTTPError:
                    self.errors += 1
                else:
                    self.latencies.append(time.perf_counter() - started)
                    self._fresh(response.content, time.time())
                if self._stop.wait(max(0.0, self._period_s - (time.perf_counter() - started))):
                    return

    def _fresh(self, body: bytes, now: float) -> None:
        self.bytes = len(body)
        for labels, value in _LAST_SEEN.findall(body):
            before = self._seen.get(labels)
            if before != value:
                self._seen[labels] = value
                if before is not None:  # the first sight of a source says nothing about how fast it came
                    self.freshness.append(now - float(value))


def _demo_env(up_pid: int, timeout_s: float = 120) -> tuple[int, dict[str, str]]:
    """The simulators' PID under ``inferwatch up`` and the environment they wrote for the collectors."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for pid in descendant_pids(up_pid):
            try:
                args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            except OSError:
                continue
            if "inferwatch.simulators" in args and "--env-file" in args:
                env_file = Path(args[args.index("--env-file") + 1])
                if env_file.exists():
                    return pid, json.loads(env_file.read_text())
        time.sleep(0.5)
    raise RuntimeError("the demo simulators did not write their environment")


def prometheus_config(demo_env: dict[str, str], vllm_sources: set[str]) -> dict[str, Any]:
    """Prometheus's scrape config for the fleet's vLLM, LiteLLM and EPP endpoints, as inferwatch sees them (the vLLM
    servers: every source the aggregator shows, the demo Docker host's discovered containers included)."""
    vllm = sorted(u.removeprefix("http://").rstrip("/") for u in vllm_sources)
    proxies = [(demo_env["INFERWATCH_LITELLM_URL"], demo_env["INFERWATCH_LITELLM_KEY"])]
    extra = yaml.safe_load(Path(demo_env["INFERWATCH_CONFIG"]).read_text())
    proxies += [(p["url"], p["key"]) for p in extra["litellm"]["proxies"]]
    jobs: list[dict[str, Any]] = [{"job_name": "vllm", "static_configs": [{"targets": vllm}]}]
    for i, (url, key) in enumerate(proxies):
        jobs.append(
            {
                "job_name": f"litellm-{i}",
                "metrics_path": "/metrics/",
                "authorization": {"credentials": key},
                "static_configs": [{"targets": [url.removeprefix("http://").rstrip("/")]}],
            }
        )
    epp = [u.removeprefix("http://").rstrip("/") for u in demo_env["INFERWATCH_EPP_TARGETS"].split(",")]
    jobs.append(
        {
            "job_name": "epp",
            "authorization": {"credentials_file": demo_env["INFERWATCH_EPP_TOKEN_FILE"]},
            "static_configs": [{"targets": epp}],
        }
    )
    return {
        "global": {"scrape_interval": f"{INTERVAL_S:g}s", "scrape_timeout": "10s"},
        "scrape_configs": jobs,
    }


def _start_prometheus(config: dict[str, Any], tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("prometheus")
    if binary is None:
        sys.exit("needs the Debian package prometheus (apt-get install prometheus)")
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, port


_SOURCE = re.compile(rb'domain="vllm".*source="([^"]*)"')


def _vllm_sources(url: str) -> set[str]:
    """The vLLM sources (target URLs) the aggregator's ``/metrics`` shows."""
    body = httpx.get(url + "/metrics", timeout=30).content
    return {m[1].decode() for labels, _ in _LAST_SEEN.findall(body) if (m := _SOURCE.search(labels))}


def main(argv: list[str] | None = None) -> int:
    """Run the fleet, measure both sides and print (and write) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300.0, help="measured window, seconds")
    parser.add_argument(
        "--warmup", type=float, default=35.0, help="seconds after every vLLM source is in (Prometheus: 2 scrapes)"
    )
    parser.add_argument("--sample-s", type=float, default=5.0, help="CPU/RSS sampling period")
    parser.add_argument("--probe-s", type=float, default=1.0, help="period of the GETs of the aggregator's /metrics")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    ports = {service.name: free_port() for service in SERVICES}
    agg_url = f"http://127.0.0.1:{ports['aggregator']}"
    extra_agents: list[subprocess.Popen[bytes]] = []
    others: list[subprocess.Popen[bytes]] = []
    with EmbeddedNats() as nats:
        env = {
            **os.environ,
            "NATS_URL": nats.url,
            "INFERWATCH_LOG_LEVEL": "error",
            "INFERWATCH_DEMO_VLLM_EXTRA": str(VLLM_TARGETS - 4),
            "INFERWATCH_VLLM_INTERVAL_S": f"{INTERVAL_S:g}",
            "INFERWATCH_LITELLM_INTERVAL_S": f"{INTERVAL_S:g}",
            "INFERWATCH_EPP_INTERVAL_S": f"{INTERVAL_S:g}",
            "INFERWATCH_SIM_NVML": str(GPUS_PER_HOST),
            "INFERWATCH_GPU_HOST": "gpu-host-0",
            **{service.port_variable: str(ports[service.name]) for service in SERVICES},
        }
        up = subprocess.Popen(
            [sys.executable, "-m", "inferwatch", "up", "--demo", "--port", str(ports["aggregator"])],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        others.append(up)
        try:
            sims_pid, demo_env = _demo_env(up.pid)
            agent_env = {k: v for k, v in demo_env.items() if k.startswith("INFERWATCH_")} | {
                "NATS_URL": nats.url,
                "INFERWATCH_LOG_LEVEL": "error",
                "INFERWATCH_SIM_NVML": str(GPUS_PER_HOST),
                "INFERWATCH_GPU_NVML": "inferwatch.simulators.nvml:from_env",
            }
            urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
            for host in range(1, GPU_HOSTS):
                proc, url = service_process("gpu-agent", {**agent_env, "INFERWATCH_GPU_HOST": f"gpu-host-{host}"})
                extra_agents.append(proc)
                urls[f"gpu-agent gpu-host-{host}"] = url
            # a collector whose upstream a demo scenario made unhealthy may stay unready: say so, measure anyway
            if unready := wait_ready(urls, 120):
                print(f"not ready after 120 s: {', '.join(unready)}", flush=True)
            deadline = time.monotonic() + 180
            while len(vllm := _vllm_sources(agg_url)) < VLLM_TARGETS:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {len(vllm)} of {VLLM_TARGETS} vLLM sources after 180 s")
                time.sleep(2)
            time.sleep(INTERVAL_S)  # the Docker host's containers, discovered by docker-watcher, come in too
            vllm = _vllm_sources(agg_url)
            prom, prom_port = _start_prometheus(prometheus_config(demo_env, vllm), tmp)
            others.append(prom)
            time.sleep(args.warmup)

            assert nats.proc is not None
            nats_pid = nats.proc.pid

            def ours() -> set[int]:
                sims = {sims_pid} | descendant_pids(sims_pid)
                tree = {up.pid} | descendant_pids(up.pid)
                return (tree - sims) | {p.pid for p in extra_agents} | {nats_pid}

            ours_meter = Meter(ours, args.sample_s)
            prom_meter = Meter(lambda: {prom.pid}, args.sample_s)
            probe = MetricsProbe(agg_url + "/metrics", args.probe_s)
            started = time.monotonic()
            ours_meter.start()
            prom_meter.start()
            probe.start()
            time.sleep(args.duration)
            probe.stop()
            ours_meter.stop()
            prom_meter.stop()
            window = time.monotonic() - started
            prom_targets, prom_up = prometheus_up(prom_port)
            sources = len(_vllm_sources(agg_url))
        finally:
            stop_processes(extra_agents)
            stop_processes(others, timeout_s=30)
            shutil.rmtree(tmp, ignore_errors=True)
    return _report(args, window, ours_meter, prom_meter, probe, (prom_targets, prom_up), sources)


def _report(
    args: argparse.Namespace,
    window: float,
    ours: Meter,
    prom: Meter,
    probe: MetricsProbe,
    prom_counts: tuple[float, float],
    vllm_sources: int,
) -> int:
    cycles = window / INTERVAL_S
    cpu = ours.cpu_by_name()
    rss = ours.rss_by_name()
    rows = [
        {
            "process": name,
            "CPU s": f"{cpu[name]:.1f}",
            "CPU s / 15 s": f"{cpu[name] / cycles:.3f}",
            "% of a core": f"{100 * cpu[name] / window:.1f}",
            "RSS MB": f"{rss[name]:.0f}",
        }
        for name in sorted(cpu, key=lambda n: -cpu[n])
    ]
    ours_cpu, prom_cpu = sum(cpu.values()), sum(prom.cpu_by_name().values())
    ours_rss, prom_rss = max(ours.rss_sums), max(prom.rss_sums)
    # Prometheus scrapes 200 vLLM + 2 LiteLLM + 1 EPP endpoints; we collect those and the Langfuse project and the
    # 8 GPU hosts too: per target, each side over what it watches, and ours also on Prometheus's share alone.
    ours_targets = vllm_sources + 2 + 1 + 1 + GPU_HOSTS
    prom_targets = int(prom_counts[0])
    shared = ("vllm-scraper", "litellm-poller", "epp-scraper", "aggregator", "nats-server")
    shared_cpu = sum(cpu.get(name, 0.0) for name in shared)
    result: dict[str, Any] = {
        "window_s": round(window, 1),
        "ours_processes": len(ours.usage),
        "ours_cpu_s": round(ours_cpu, 2),
        "ours_cpu_by_process": {k: round(v, 2) for k, v in cpu.items()},
        "ours_rss_mb_max": round(ours_rss, 1),
        "ours_rss_mb_mean": round(sum(ours.rss_sums) / len(ours.rss_sums), 1),
        "ours_pss_mb_max": round(max(ours.pss_sums), 1),
        "ours_rss_by_process_mb": {k: round(v, 1) for k, v in rss.items()},
        "ours_targets": ours_targets,
        "ours_cpu_ms_per_target_cycle": round(1e3 * ours_cpu / cycles / ours_targets, 2),
        "ours_rss_mb_per_target": round(ours_rss / ours_targets, 2),
        "ours_shared_cpu_ms_per_target_cycle": round(1e3 * shared_cpu / cycles / max(prom_targets, 1), 2),
        "prometheus_cpu_s": round(prom_cpu, 2),
        "prometheus_rss_mb_max": round(prom_rss, 1),
        "prometheus_targets": prom_targets,
        "prometheus_targets_up": prom_counts[1],
        "prometheus_cpu_ms_per_target_cycle": round(1e3 * prom_cpu / cycles / max(prom_targets, 1), 2),
        "prometheus_rss_mb_per_target": round(prom_rss / max(prom_targets, 1), 2),
        "metrics_gets": len(probe.latencies),
        "metrics_errors": probe.errors,
        "metrics_bytes": probe.bytes,
        "metrics_p50_ms": round(1e3 * percentile(probe.latencies, 0.5), 1),
        "metrics_p99_ms": round(1e3 * percentile(probe.latencies, 0.99), 1),
        "freshness_observations": len(probe.freshness),
        "freshness_p50_ms": round(1e3 * percentile(probe.freshness, 0.5), 0),
        "freshness_p99_ms": round(1e3 * percentile(probe.freshness, 0.99), 0),
        "vllm_sources_at_end": vllm_sources,
        "load_average": os.getloadavg(),
    }
    print(
        f"fleet: {vllm_sources} vLLM ({VLLM_TARGETS} + the demo Docker host's), 2 LiteLLM, 1 Langfuse, "
        f"{GPU_HOSTS} GPU hosts x {GPUS_PER_HOST} GPUs, "
        f"1 EPP (2 pools); {window:.0f} s window ({cycles:.1f} cycles of {INTERVAL_S:g} s); "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(table(rows, list(rows[0])))
    print(
        f"inferwatch ({len(ours.usage)} processes): {ours_cpu:.1f} CPU s ({100 * ours_cpu / window:.1f}% of a core), "
        f"RSS max {ours_rss:.0f} MB (PSS {max(ours.pss_sums):.0f} MB); {ours_targets} targets: "
        f"{result['ours_cpu_ms_per_target_cycle']} ms CPU per target per 15 s, "
        f"{result['ours_rss_mb_per_target']} MB RSS per target"
    )
    print(
        f"  on Prometheus's {prom_targets} targets alone (vllm-scraper, litellm-poller, epp-scraper, aggregator, "
        f"nats-server): {result['ours_shared_cpu_ms_per_target_cycle']} ms CPU per target per 15 s"
    )
    print(
        f"prometheus 2.42: {prom_cpu:.1f} CPU s ({100 * prom_cpu / window:.1f}% of a core), RSS max {prom_rss:.0f} MB; "
        f"{prom_targets} targets ({prom_counts[1]:g} up): {result['prometheus_cpu_ms_per_target_cycle']} ms CPU per "
        f"target per 15 s, {result['prometheus_rss_mb_per_target']} MB RSS per target"
    )
    print(
        f"aggregator /metrics ({probe.bytes / 1e6:.1f} MB): p50 {result['metrics_p50_ms']} ms, p99 "
        f"{result['metrics_p99_ms']} ms over {len(probe.latencies)} GETs ({probe.errors} errors); freshness "
        f"(observed_at -> on /metrics, GET every {args.probe_s:g} s): p50 {result['freshness_p50_ms']:.0f} ms, "
        f"p99 {result['freshness_p99_ms']:.0f} ms over {len(probe.freshness)} observations; "
        f"{vllm_sources} vLLM sources at the end"
    )
    ratio = (
        result["ours_shared_cpu_ms_per_target_cycle"] / result["prometheus_cpu_ms_per_target_cycle"]
        if prom_cpu
        else float("nan")
    )
    report_goal(
        "fleet",
        ratio,
        f"{result['ours_shared_cpu_ms_per_target_cycle']} vs {result['prometheus_cpu_ms_per_target_cycle']} ms CPU "
        f"per target per 15 s; all of ours {result['ours_cpu_ms_per_target_cycle']} ms over {ours_targets} targets; "
        f"RSS {ours_rss:.0f} vs {prom_rss:.0f} MB; /metrics p99 {result['metrics_p99_ms']} ms; "
        f"freshness p99 {result['freshness_p99_ms']:.0f} ms",
    )
    out = write_json("fleet", result, args.json)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
