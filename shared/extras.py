"""Optional parts installed as extras (``pip install 'inferwatch[grpc]'``): which import needs which extra.

A plain ``pip install inferwatch`` (and ``make up``) runs every service and the demo. Heavier drivers that only
some deployments use are extras declared in pyproject.toml; code that needs one imports it through `require`, so
a missing extra is an error that names the extra and the command that installs it, not a bare
``ModuleNotFoundError``. Settings that will need an extra check with `missing` when they are read, so the service
stops at start with that message rather than on its first call.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

# Import name -> (extra, what it enables). The extras' contents live in pyproject.toml (tests/unit/test_extras.py
# checks that every extra named here is declared there).
EXTRA_OF_MODULE: dict[str, tuple[str, str]] = {
    "grpc": ("grpc", "health checks of `vllm serve --grpc` targets (grpc:// and grpcs://)"),
    "grpc_health": ("grpc", "health checks of `vllm serve --grpc` targets (grpc:// and grpcs://)"),
    "psycopg": ("langfuse-db", "langfuse-ingester DB mode on Langfuse v2 (PostgreSQL)"),
    "clickhouse_connect": ("langfuse-db", "langfuse-ingester DB mode on Langfuse v3/v4 (ClickHouse)"),
}


class MissingExtraError(ImportError):
    """An optional module is not installed; the message names the extra that brings it."""


def message(module: str) -> str:
    """What to tell the user when ``module`` is missing: the part it enables and the extra to install."""
    extra, purpose = EXTRA_OF_MODULE[module]
    return f"{purpose} needs the '{extra}' extra (module {module} is not installed): pip install 'inferwatch[{extra}]'"


def missing(*modules: str) -> str | None:
    """`message` for the first of ``modules`` that cannot be imported, else None (finds them without importing)."""
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return message(module)
    return None


def require(module: str) -> ModuleType:
    """Import ``module`` (dotted names allowed) whose top-level package is a key of `EXTRA_OF_MODULE`.

    Raises:
        MissingExtraError: it, or another optional module it needs, is not installed; the message names the extra.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in EXTRA_OF_MODULE:
            raise  # a broken install of something that is not optional: not ours to rename
        raise MissingExtraError(message(top)) from None
