"""The README's table of exported metric families, generated from the code (so the two cannot drift).

Run: .venv/bin/python -m scripts.metrics_table [--write]   (--write updates README.md in place)
"""

from __future__ import annotations

import sys
from pathlib import Path

from services.aggregator import app
from services.aggregator.domains import all_families
from services.aggregator.render import Family
from services.aggregator.state import SOURCE_INTERVAL, SOURCE_LAST_SEEN, SOURCE_UP


def exported_families() -> list[Family]:
    """Every family the aggregator can export."""
    own = [v for v in vars(app).values() if isinstance(v, Family)]
    return sorted({*all_families(), SOURCE_UP, SOURCE_LAST_SEEN, SOURCE_INTERVAL, *own}, key=lambda f: f.name)


def sample_name(family: Family) -> str:
    """The name as it appears on /metrics (counters get ``_total``)."""
    return family.name + "_total" if family.type == "counter" else family.name


BEGIN, END = "<!-- metrics-table:begin -->", "<!-- metrics-table:end -->"
README = Path(__file__).resolve().parents[1] / "README.md"


def render_table() -> str:
    """The markdown table."""
    rows = ["| metric | type | meaning |", "|---|---|---|"]
    rows += [f"| `{sample_name(f)}` | {f.type} | {f.help} |" for f in exported_families()]
    return "\n".join(rows)


def with_table(readme: str) -> str:
    """``readme`` with the table between the markers replaced."""
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{render_table()}\n{END}{tail}"


def main() -> None:
    """Print the table, or write it into README.md."""
    if "--write" in sys.argv:
        README.write_text(with_table(README.read_text()))
    else:
        print(render_table())


if __name__ == "__main__":
    main()
