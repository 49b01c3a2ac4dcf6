"""Per-domain renderers: each module maps event types to functions writing their series.

A module here defines ``RENDERERS = renderer_for(EventClass, render_fn)`` (``render_fn`` takes its own
event class). Families are module-level `Family` constants, or `FieldFamily` tuples derived
from a contract's metric fields (`field_families`). New domains need no registration beyond adding their module.
"""

from __future__ import annotations

import importlib
import pkgutil

from inferwatch.contracts import Event
from inferwatch.services.aggregator.render import Family, FieldFamily, RenderFn


def all_renderers() -> dict[type[Event], RenderFn]:
    """Collect ``RENDERERS`` from every module of this package."""
    renderers: dict[type[Event], RenderFn] = {}
    for module in _modules():
        renderers.update(getattr(module, "RENDERERS", {}))
    return renderers


def all_families() -> list[Family]:
    """Every family any domain may export (for the README and the dashboards' checks)."""
    families: list[Family] = []
    for module in _modules():
        for value in vars(module).values():
            if isinstance(value, Family):
                families.append(value)
            elif isinstance(value, tuple):
                families.extend(f.family for f in value if isinstance(f, FieldFamily))
    return sorted(set(families), key=lambda f: f.name)


def _modules() -> list[object]:
    return [importlib.import_module(f"{__name__}.{info.name}") for info in pkgutil.iter_modules(__path__)]


__all__ = ["Family", "all_families", "all_renderers"]
