"""Coverage-guided fuzzing (atheris) of the exposition parser and the event decoder.

Only our own error types may come out (ExpositionError, DecodeError); anything else is a crash that
atheris reports with the input. Run: .venv/bin/python bench/fuzz/fuzz_decoders.py -runs=200000
(pip install atheris first; it is not a project dependency). The JSON handlers have their own
harness, ``fuzz_json_handlers.py``. libFuzzer prints how many inputs ran
("Done N runs").
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports():
    from inferwatch.contracts import DecodeError, decode
    from inferwatch.services.vllm_scraper.core import WANTED, cap_engines, engine_stats, parse_models
    from inferwatch.shared.exposition import ExpositionError, parse_exposition


def one_input(data: bytes) -> None:
    """Feed the same bytes to every decoder."""
    try:
        families = parse_exposition(data, max_samples=10_000)
        engine_stats(families)
        engines = engine_stats(parse_exposition(data, families=WANTED, max_samples=10_000))
        kept, _ = cap_engines(engines, 2, ["m"])
        assert len(kept) <= 2
    except ExpositionError:
        pass
    with contextlib.suppress(DecodeError):
        decode(data)
    with contextlib.suppress(ValueError):
        parse_models(data)


def main() -> None:
    """Seed with the recorded fixtures, then fuzz."""
    seeds = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
    corpus = Path("/tmp/inferwatch-fuzz-corpus")
    corpus.mkdir(exist_ok=True)
    for f in seeds.glob("vllm-*"):
        (corpus / f.name).write_bytes(f.read_bytes()[:20_000])
    atheris.Setup([*sys.argv, str(corpus)], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
