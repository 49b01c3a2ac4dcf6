"""Run every benchmark in bench/ (each prints its own ratios against a baseline measured in the same run).

Run: make bench   (or .venv/bin/python bench/run_all.py [--only NAME ...])
Each bench writes its figures as JSON under bench/results/ so a later change can be compared.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", default=None, help="bench names, e.g. render ingest")
    args = parser.parse_args()
    benches = sorted(p for p in HERE.glob("bench_*.py"))
    failed = []
    summary: list[tuple[str, str]] = []  # (bench, a line that names a goal or a ratio)
    for path in benches:
        name = path.stem.removeprefix("bench_")
        if args.only and name not in args.only:
            continue
        print(f"\n=== {name} ({path.name})", flush=True)
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", f"bench.{path.stem}"], cwd=HERE.parent, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:  # echoed as it comes; the goal and ratio lines are kept for the summary
            print(line, end="", flush=True)
            if "goal" in line or "ratio" in line:
                summary.append((name, line.strip()))
        code = proc.wait()
        print(f"--- {name}: exit {code}, {time.monotonic() - start:.0f} s", flush=True)
        if code:
            failed.append(name)
    print("\n=== summary (each ratio against a baseline measured in the same run)")
    width = max((len(n) for n, _ in summary), default=0)
    for name, line in summary:
        print(f"{name:<{width}}  {line}")
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
