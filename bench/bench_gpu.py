"""gpu-agent polling cost per GPU per cycle, on the fake NVML.

"agent" is one full cycle as the agent runs it: every NVML field and process list of every GPU through
``NvmlReader`` (unsupported-field skipping, PID → container cache), the ``GpuHostSnapshot`` built and
encoded for the bus. Baseline "raw calls": the same NVML calls on the same fake, made directly in a loop
with nothing else — the floor the agent's own logic adds to. "cgroup read" is one uncached
``/proc/<pid>/cgroup`` read and parse (paid once per new GPU process, then cached).

Run: .venv/bin/python bench/bench_gpu.py [--gpus 1,8,64] [--json PATH]
Goal (issue #6): < 5 ms per GPU per cycle.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import best_of, report_goal, table, write_json

CYCLES = 200


def main() -> None:
    """Measure and print the table (and write the JSON)."""
    from inferwatch.contracts.codec import encode
    from inferwatch.services.gpu_agent.app import snapshot
    from inferwatch.services.gpu_agent.config import GpuAgentConfig
    from inferwatch.services.gpu_agent.core import container_id_from_cgroup
    from inferwatch.services.gpu_agent.nvml import FIELDS, NvmlReader, read_cgroup_container
    from inferwatch.simulators.nvml import FakeNvml

    parser = argparse.ArgumentParser()
    parser.add_argument("--gpus", default="1,8,64")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = []
    config = GpuAgentConfig(host="bench")
    for n in (int(x) for x in args.gpus.split(",")):
        fake = FakeNvml(gpus=n)

        def container_of(pid: int, f: FakeNvml = fake) -> str:
            return container_id_from_cgroup(f.cgroup_text(pid))

        reader = NvmlReader(fake, container_of=container_of)
        encode(snapshot(reader, config, "bench"))  # init + first cycle (fills the caches)

        def agent_cycles(reader: NvmlReader = reader) -> None:
            for _ in range(CYCLES):
                encode(snapshot(reader, config, "bench"))

        def raw_cycles(fake: FakeNvml = fake, n: int = n) -> None:
            nvml = fake
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(n)]
            for _ in range(CYCLES):
                for h in handles:
                    for field, (fn, extra) in FIELDS.items():
                        if field != "fan":
                            getattr(nvml, fn)(h, *extra)
                    nvml.nvmlDeviceGetComputeRunningProcesses(h)
                    nvml.nvmlDeviceGetGraphicsRunningProcesses(h)

        _, agent_median = best_of(agent_cycles)
        _, raw_median = best_of(raw_cycles)
        rows.append(
            {
                "gpus": n,
                "agent_ms_per_gpu_cycle": round(agent_median / CYCLES / n * 1e3, 4),
                "raw_calls_ms_per_gpu_cycle": round(raw_median / CYCLES / n * 1e3, 4),
                "agent_ms_per_cycle": round(agent_median / CYCLES * 1e3, 3),
            }
        )
    pid = os.getpid()
    _, cgroup_median = best_of(lambda: [read_cgroup_container("/proc", pid) for _ in range(1000)])
    print(table(rows, ["gpus", "agent_ms_per_gpu_cycle", "raw_calls_ms_per_gpu_cycle", "agent_ms_per_cycle"]))
    print(f"cgroup read+parse (uncached, /proc/self): {cgroup_median / 1000 * 1e6:.1f} us")
    worst = max(r["agent_ms_per_gpu_cycle"] for r in rows)
    ratio = worst / max(r["raw_calls_ms_per_gpu_cycle"] for r in rows)
    report_goal("gpu_poll", worst, f"{ratio:.1f}x the raw NVML calls")
    out = write_json("gpu", {"rows": rows, "cgroup_read_us": cgroup_median / 1000 * 1e6, "goal_ms": 5.0}, args.json)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
