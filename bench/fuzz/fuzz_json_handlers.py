"""Coverage-guided fuzzing (atheris) of every pure JSON handler: LiteLLM, Langfuse, vLLM, Docker, Hugging Face.

The input is JSON text (seeded with the recorded fixtures); each handler gets the decoded document, and
the row parsers each element of its ``data`` list. Only our own error types may come out (ValueError
for document parsers, BadRowError for Langfuse rows); anything else is a crash that atheris reports
with the input. Run: .venv/bin/python bench/fuzz/fuzz_json_handlers.py -runs=200000 (needs atheris).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports():
    import msgspec

    from inferwatch.services.docker_watcher.core import container_info
    from inferwatch.services.langfuse_ingester.core import (
        BadRowError,
        number,
        parse_major,
        parse_observation,
        parse_score,
        parse_time,
        parse_trace,
        reduce_details,
    )
    from inferwatch.services.litellm_poller.core import (
        merge_group_info,
        parse_backlog,
        parse_health,
        parse_model_group_info,
        parse_model_info,
        parse_readiness,
    )
    from inferwatch.services.model_catalog.core import parse_hf_model
    from inferwatch.services.vllm_scraper.core import parse_models

DOCUMENT_PARSERS = (parse_model_group_info, parse_readiness, parse_backlog, parse_health)


def _rows(doc: Any) -> list[Any]:
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        return list(doc["data"])
    return [doc]


def one_input(data: bytes) -> None:
    """Feed the bytes to every JSON handler."""
    with contextlib.suppress(ValueError):
        parse_models(data)
    try:
        doc = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return
    for parse in DOCUMENT_PARSERS:
        with contextlib.suppress(ValueError):
            parse(doc)
    with contextlib.suppress(ValueError):
        routes = parse_model_info(doc)
        merge_group_info(routes, parse_model_group_info(doc))
    for row in _rows(doc):
        for parse_row in (parse_trace, parse_observation, parse_score):
            with contextlib.suppress(BadRowError):
                parse_row(row)
        reduce_details(row)
        number(row)
        parse_time(row)
        if isinstance(row, str):
            parse_major(row)
        if isinstance(row, dict):
            parse_hf_model(row)
            container_info(row)
            container_info(row, address_mode="container")


def main() -> None:
    """Seed with the recorded JSON fixtures, then fuzz."""
    fixtures = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
    corpus = Path("/tmp/inferwatch-fuzz-json-corpus")
    corpus.mkdir(exist_ok=True)
    for f in fixtures.rglob("*.json"):
        if "deploy" not in f.parts:  # the compose schema is not an upstream answer
            (corpus / f"{f.parent.name}-{f.name}").write_bytes(f.read_bytes()[:20_000])
    msgspec.json.decode(b"{}")  # decoder warm-up outside the first input's timing
    atheris.Setup([*sys.argv, str(corpus)], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
