"""Run every benchmark in bench/ (each prints its own ratios against a baseline measured in the same run).

Run: make bench   (or .venv/bin/python bench/run_all.py [--only NAME ...] [--quick])
Each bench writes its figures as JSON under bench/results/ so a later change can be compared. At the end,
every goal of `bench._common.GOALS` is printed with MET, MISSED, REPORTED (a figure with no number to reach) or
"not run", beside the same goal's figure from the previous run on this machine (bench/results/goals-*.json, which
this run writes too).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench._common import GOALS, RESULTS, write_json  # noqa: E402

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
    previous = _previous_goals()
    print("\n=== goals (each ratio against a baseline measured in the same run)")
    for key, goal in GOALS.items():
        verdict, figure = results.get(key, ("not run", ""))
        before = f" [previous run: {previous[key][0]} ({previous[key][1]})]" if key in previous else ""
        print(f"{verdict:<8} {goal.figure}{goal.bound}" + (f": {figure}" if figure else "") + before)
    if results:
        write_json("goals", {"goals": {key: list(value) for key, value in results.items()}})
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


def _previous_goals() -> dict[str, tuple[str, str]]:
    """Goal -> (verdict, figure) of the newest earlier run that measured it (bench/results/goals-*.json)."""
    previous: dict[str, tuple[str, str]] = {}
    for path in sorted(RESULTS.glob("goals-*.json")):  # oldest first: newer runs overwrite
        for key, (verdict, figure) in json.loads(path.read_text()).get("goals", {}).items():
            previous[key] = (verdict, figure)
    return previous


if __name__ == "__main__":
    raise SystemExit(main())
