"""The README's generated tables (services, subjects, exported metrics, GPU peaks, shipped SLOs, unit
economics), made from the code so they cannot drift.

Run: .venv/bin/python -m scripts.readme_tables [--write]   (--write updates README.md in place)
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from inferwatch.contracts import EVENT_TYPES, Snapshot, subject_address
from inferwatch.services import SERVICES
from inferwatch.services.aggregator import app, slo
from inferwatch.services.aggregator.domains import all_families
from inferwatch.services.aggregator.domains import economics as economics_domain
from inferwatch.services.aggregator.render import Family
from inferwatch.services.aggregator.state import SOURCE_INTERVAL, SOURCE_LAST_SEEN, SOURCE_UP
from inferwatch.shared.gpu_peaks import GPU_PEAKS

README = Path(__file__).resolve().parents[1] / "README.md"


def exported_families() -> list[Family]:
    """Every family the aggregator can export."""
    own = [v for module in (app, slo) for v in vars(module).values() if isinstance(v, Family)]
    return sorted({*all_families(), SOURCE_UP, SOURCE_LAST_SEEN, SOURCE_INTERVAL, *own}, key=lambda f: f.name)


def sample_name(family: Family) -> str:
    """The name as it appears on /metrics (counters get ``_total``)."""
    return family.name + "_total" if family.type == "counter" else family.name


def metrics_table() -> str:
    """Every exported metric family: name, type, unit, help."""
    rows = ["| metric | type | unit | meaning |", "|---|---|---|---|"]
    rows += [f"| `{sample_name(f)}` | {f.type} | {f.unit} | {f.help} |" for f in exported_families()]
    return "\n".join(rows)


def services_table() -> str:
    """Every registered service: name, default port, environment prefix, what it does."""
    rows = ["| service | port | settings | what it does |", "|---|---|---|---|"]
    rows += [f"| `{s.name}` | {s.port} | `{s.env_prefix}*` | {s.summary} |" for s in SERVICES]
    return "\n".join(rows)


def subjects_table() -> str:
    """Every event type: its subjects (current version), name, and the first paragraph of its docstring."""
    rows = ["| subject | event | what it says |", "|---|---|---|"]
    for t in EVENT_TYPES:
        kind = "snapshot" if issubclass(t, Snapshot) else "occurrence"
        summary = " ".join((t.__doc__ or "").strip().split("\n\n")[0].split()).replace("``", "`")
        rows.append(f"| `{subject_address(t)}` | `{t.__name__}` | {kind}: {summary} |")
    return "\n".join(rows)


def gpu_peaks_table() -> str:
    """The GPU peak table (`shared.gpu_peaks`): NVML name, dense FLOP/s, memory bandwidth, source."""
    rows = ["| NVML name | dense FLOP/s | memory bandwidth | source |", "|---|---|---|---|"]
    for name, peak in GPU_PEAKS.items():
        bandwidth = peak.memory_bandwidth_bytes_per_second
        shown = f"{bandwidth / 1e12:g} TB/s" if bandwidth >= 1e12 else f"{bandwidth / 1e9:g} GB/s"
        rows.append(f"| `{name}` | {peak.dense_flops_per_second / 1e12:,g} T | {shown} | {peak.source} |")
    return "\n".join(rows)


def _good_request(objective: slo.Slo) -> str:
    """What counts as good, from the SLO's typed fields (not its free-text description)."""
    if objective.sli == "availability":
        outcomes = " or ".join(f"`{g}`" for g in objective.good)
        return f"`{slo.sli_family(objective).label}` {outcomes}"
    return f"`{objective.sli}` at most {objective.threshold_s:g} s"


def slos_table() -> str:
    """The shipped SLOs (`slo.DEFAULT_SLO_FILE`): name, per what, what a good request is, objective."""
    rows = ["| SLO | per | good request | objective |", "|---|---|---|---|"]
    for s in slo.load_slos(slo.DEFAULT_SLO_FILE).slos:
        rows.append(f"| `{s.name}` | {s.source} `{s.key_label}` | {_good_request(s)} | {s.objective * 100:g} % |")
    return "\n".join(rows)


def economics_table() -> str:
    """The unit-economics gauges (label ``model_name``), from the families the economics domain declares."""
    families = [v for v in vars(economics_domain).values() if isinstance(v, Family)]
    rows = ["| gauge (label `model_name`) | what |", "|---|---|"]
    rows += [f"| `{sample_name(f)}` | {f.help} |" for f in sorted(families, key=lambda f: f.name)]
    return "\n".join(rows)


TABLES: dict[str, Callable[[], str]] = {
    "services-table": services_table,
    "subjects-table": subjects_table,
    "metrics-table": metrics_table,
    "gpu-peaks-table": gpu_peaks_table,
    "slos-table": slos_table,
    "economics-table": economics_table,
}


def with_tables(readme: str) -> str:
    """``readme`` with every generated table between its ``<!-- name:begin -->``/``<!-- name:end -->`` markers."""
    for name, render in TABLES.items():
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        head, rest = readme.split(begin, 1)
        _, tail = rest.split(end, 1)
        readme = f"{head}{begin}\n{render()}\n{end}{tail}"
    return readme


def main() -> None:
    """Print the tables, or write them into README.md."""
    if "--write" in sys.argv:
        README.write_text(with_tables(README.read_text()))
    else:
        for render in TABLES.values():
            print(render(), end="\n\n")


if __name__ == "__main__":
    main()
