"""Helpers shared by the benchmarks: timing, result files, tables."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def best_of(fn: Callable[[], object], repeats: int = 5) -> tuple[float, float]:
    """(best, median) wall seconds of ``fn`` over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain-text table."""
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns), "  ".join("-" * widths[c] for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def write_json(name: str, payload: dict[str, Any], path: str | None = None) -> Path:
    """Write one run's figures (bench/results/<name>-<timestamp>.json unless a path is given)."""
    payload = {
        "bench": name,
        "time": time.time(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        **payload,
    }
    out = Path(path) if path else RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    return out
