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
    for path in benches:
        name = path.stem.removeprefix("bench_")
        if args.only and name not in args.only:
            continue
        print(f"\n=== {name} ({path.name})", flush=True)
        start = time.monotonic()
        code = subprocess.call([sys.executable, "-m", f"bench.{path.stem}"], cwd=HERE.parent)
        print(f"--- {name}: exit {code}, {time.monotonic() - start:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
