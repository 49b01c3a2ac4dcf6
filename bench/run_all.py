"""Run every benchmark in bench/ (each prints its own ratios against a baseline measured in the same run).

Run: make bench   (or .venv/bin/python bench/run_all.py [--only NAME ...] [--quick])
Each bench writes its figures as JSON under bench/results/ so a later change can be compared. At the end,
every goal of `bench._common.GOALS` is printed with MET, MISSED, REPORTED (a figure with no number to reach) or
"not run".
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench._common import GOALS  # noqa: E402

_GOAL_LINE = re.compile(r"goal (\w+): .*: (MET|MISSED|REPORTED) \((.*)\)$")
# Benches that take --quick (shorter runs, same goals): the others run in full either way.
_QUICK = {
    "exposition": ["--quick"],
    "scrape": ["--cycles", "2"],
    "ingest": ["--rounds", "1"],
    "fleet": ["--duration", "60"],
    "http_client": ["--requests", "1000", "--rounds", "2"],
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", default=None, help="bench names, e.g. render ingest")
    parser.add_argument("--quick", action="store_true", help="shorter runs where a bench allows it")
    args = parser.parse_args()
    benches = sorted(p for p in HERE.glob("bench_*.py"))
    failed = []
    results: dict[str, tuple[str, str]] = {}  # goal key -> (MET/MISSED, figure)
    for path in benches:
        name = path.stem.removeprefix("bench_")
        if args.only and name not in args.only:
            continue
        print(f"\n=== {name} ({path.name})", flush=True)
        start = time.monotonic()
        extra = _QUICK.get(name, []) if args.quick else []
        proc = subprocess.Popen(
            [sys.executable, "-m", f"bench.{path.stem}", *extra], cwd=HERE.parent, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:  # echoed as it comes; the goal lines are kept for the summary
            print(line, end="", flush=True)
            m = _GOAL_LINE.search(line.strip())
            if m and m.group(1) in GOALS:
                results[m.group(1)] = (m.group(2), m.group(3))
        code = proc.wait()
        print(f"--- {name}: exit {code}, {time.monotonic() - start:.0f} s", flush=True)
        if code:
            failed.append(name)
    print("\n=== goals (each ratio against a baseline measured in the same run)")
    for key, goal in GOALS.items():
        verdict, figure = results.get(key, ("not run", ""))
        print(f"{verdict:<8} {goal.figure}{goal.bound}" + (f": {figure}" if figure else ""))
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
