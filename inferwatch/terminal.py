"""What the ``inferwatch`` command prints: ``inferwatch status``'s tables and ``inferwatch up``'s start summary.

Pure functions from data to text (tested in tests/unit/test_terminal.py); the command does the I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Setting names whose values are secrets or hold credentials (the demo's fake keys included): never printed.
SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|DSN|CREDS", re.IGNORECASE)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], max_width: int = 60) -> list[str]:
    """A plain text table: columns padded to their widest cell, each cell cut at ``max_width`` characters."""
    cells = [[_cut(str(c), max_width) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return lines


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _figures(model: Mapping[str, Any]) -> str:
    return ", ".join(f"{label} {value}" for label, value in model.get("figures", []))


def status_text(payload: Mapping[str, Any], *, width: int = 60) -> str:
    """``inferwatch status``: the status page's sections as terminal tables, in the page's order.

    Models (availability, type, endpoint, figures), firing alerts, GPUs per host, then every source by domain
    with its state and reason; inferwatch's own sources are summed up in one line (``--json`` has them all).
    """
    out: list[str] = []
    models = payload.get("models", [])
    available = sum(1 for m in models if m.get("available"))
    out += [f"MODELS ({available} of {len(models)} available)"]
    out += table(
        ("model", "state", "type", "endpoint", "figures"),
        (
            (
                m["name"],
                "available" if m.get("available") else "unavailable",
                m.get("model_type", ""),
                (m.get("endpoints") or ["-"])[0],
                _figures(m),
            )
            for m in models
        ),
        width,
    )
    alerts = payload.get("alerts", [])
    out += ["", f"FIRING ALERTS ({len(alerts)})"]
    if alerts:
        out += table(
            ("alert", "severity", "summary"),
            ((a.get("name", ""), a.get("severity", ""), a.get("annotations", {}).get("summary", "")) for a in alerts),
            width,
        )
    hosts = payload.get("gpu_hosts", [])
    if hosts:
        out += ["", "GPUS"]
        out += table(
            ("host", "gpu", "busy", "memory", "containers (models)"),
            (
                (
                    h["host"],
                    f"{g['index']} {g['name']}",
                    "-" if g.get("utilization_ratio") is None else f"{g['utilization_ratio']:.0%}",
                    _memory(g),
                    ", ".join(g.get("containers", [])) + (f" ({', '.join(g['models'])})" if g.get("models") else ""),
                )
                for h in hosts
                for g in h.get("gpus", [])
            ),
            width,
        )
    sources = payload.get("sources", [])
    systems = [s for s in sources if not s.get("own")]
    own = [s for s in sources if s.get("own")]
    out += ["", f"SOURCES ({sum(1 for s in systems if s['state'] != 'up')} of {len(systems)} not up)"]
    out += table(
        ("domain", "source", "state", "reason"),
        ((f"{s['domain']}/{s['kind']}", s["source"], s["state"], s.get("error", "")) for s in systems),
        width,
    )
    trouble = [s for s in own if s["state"] != "up"]
    out += ["", f"inferwatch itself: {len(own)} sources, {len(trouble)} not up" + ("" if trouble else " (all up)")]
    out += [f"  {s['domain']}/{s['kind']} {s['source']}: {s['state']} {s.get('error', '')}".rstrip() for s in trouble]
    return "\n".join(out) + "\n"


def _memory(gpu: Mapping[str, Any]) -> str:
    used, total = gpu.get("memory_used_bytes"), gpu.get("memory_total_bytes")
    if used is None or total is None:
        return "-"
    return f"{used / 2**30:.1f}/{total / 2**30:.1f} GiB"


def up_summary(*, nats: str, aggregator_url: str, services: Mapping[str, str], scenarios_url: str = "") -> str:
    """``inferwatch up``'s few lines at start: what runs where, the aggregator and (in the demo) the scenarios."""
    lines = [
        f"NATS        {nats}",
        f"Aggregator  {aggregator_url}/metrics   status page {aggregator_url}/   (`inferwatch status` in a terminal)",
        f"Collectors  {', '.join(n for n in services)}",
    ]
    if scenarios_url:
        lines.append(f"Scenarios   {scenarios_url}/scenarios   (POST / DELETE /scenarios/<name>)")
    lines.append("A part that dies is restarted with backoff; Ctrl-C stops everything. --verbose shows every setting.")
    return "\n".join(lines) + "\n"


def settings_text(services: Mapping[str, str], settings: Mapping[str, str]) -> str:
    """``inferwatch up --verbose``: each service's URL, then the settings the children get (secrets masked)."""
    lines = ["Services"] + [f"  {name:<18} {url}/readyz" for name, url in services.items()]
    lines.append("Settings")
    for name in sorted(settings):
        value = "***" if SECRET_NAME.search(name) else settings[name]
        lines.append(f"  {name}={value}")
    return "\n".join(lines) + "\n"
