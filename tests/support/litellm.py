"""The LiteLLM master key the tests give the simulated proxy: a marker no output may contain."""

from __future__ import annotations

MARKER = "sk-MARKER-7f3a9c2e1d"
