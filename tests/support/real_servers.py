"""Real vLLM and LiteLLM servers in tests: their cached venvs, one server process group at a time, sums of series.

The venvs are built by ``python -m scripts.real_vllm install`` / ``python -m scripts.real_litellm install``
(``make test`` runs both before the slow tier, so no test spends its timeout on a 3.5 GB install). A test whose
venv is missing skips, or fails under CI's ``INFERWATCH_REQUIRE_SYSTEM_TOOLS=1``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from inferwatch.shared.exposition import parse_exposition
from scripts.real_servers import CachedVenv, stop_process


def require_venv(venv: CachedVenv, install: str) -> None:
    """Skip (fail under ``INFERWATCH_REQUIRE_SYSTEM_TOOLS=1``) unless ``venv`` is built."""
    if venv.ready():
        return
    message = f"needs the cached venv {venv.path} (`{install}` builds it)"
    if os.environ.get("INFERWATCH_REQUIRE_SYSTEM_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class ServerProcess:
    """A real server the test may stop and start again; `close` stops whatever runs and checks nothing survived.

    Attributes:
        launch: starts the server (a new process group) and returns it.
        log: where its output goes.
    """

    launch: Callable[[], subprocess.Popen[bytes]]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    pids: list[int] = field(default_factory=list)

    def start(self) -> subprocess.Popen[bytes]:
        """Launch it (it must not be running)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.proc = self.launch()
        self.pids.append(self.proc.pid)
        return self.proc

    def stop(self) -> None:
        """Stop its whole process group; fail if any of it survives."""
        if self.proc is None:
            return
        survivors = stop_process(self.proc)
        self.proc = None
        assert not survivors, f"processes of the server survived: {survivors}"

    def tail(self, lines: int = 40) -> str:
        """The end of its log (for failure messages)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def series(body: bytes | str, family: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of ``family`` in an exposition: (sample name, labels, value)."""
    raw = body.encode() if isinstance(body, str) else body
    fam = parse_exposition(raw, families=frozenset({family})).get(family)
    return [(s.name, dict(s.labels), s.value) for s in fam.samples] if fam else []


def total(body: bytes | str, family: str, sample: str | None = None, **labels: str) -> float:
    """The sum of ``family``'s samples named ``sample`` (default: the family, or its ``_total``) matching ``labels``."""
    names = {sample} if sample else {family, family + "_total"}
    return sum(
        v for name, ls, v in series(body, family) if name in names and all(ls.get(k) == x for k, x in labels.items())
    )


def by_label(body: bytes | str, family: str, label: str, **labels: str) -> dict[str, float]:
    """``family``'s counter samples summed per value of ``label``, among those matching ``labels``."""
    out: dict[str, float] = {}
    for name, ls, v in series(body, family):
        if name in (family, family + "_total") and all(ls.get(k) == x for k, x in labels.items()):
            out[ls.get(label, "")] = out.get(ls.get(label, ""), 0.0) + v
    return out
