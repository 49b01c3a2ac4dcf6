"""The event loop every service process runs on: uvloop where it is installed, asyncio's own otherwise.

uvloop (libuv underneath) spends less CPU per I/O event than asyncio's selector loop, and every collector is
mostly I/O events: requests out, snapshots published, timers. ``INFERWATCH_EVENT_LOOP=asyncio`` turns it off
(to compare, or to rule it out); where uvloop cannot be imported (Windows) asyncio's loop is used either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

from inferwatch.shared.settings import Env, SettingsError

T = TypeVar("T")

#: The setting that picks the loop: ``uvloop`` (default) or ``asyncio``.
EVENT_LOOP_SETTING = "INFERWATCH_EVENT_LOOP"
EVENT_LOOPS = ("uvloop", "asyncio")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(environ: Mapping[str, str] | None = None) -> LoopFactory | None:
    """The factory of the event loop to run on; ``None`` is asyncio's default loop.

    Raises:
        SettingsError: ``INFERWATCH_EVENT_LOOP`` names no known loop.
    """
    choice = Env(environ).get(EVENT_LOOP_SETTING, "uvloop").lower()
    if choice not in EVENT_LOOPS:
        raise SettingsError(f"{EVENT_LOOP_SETTING} must be one of {', '.join(EVENT_LOOPS)}, got {choice!r}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:  # not installable on Windows (the dependency's platform marker): asyncio's loop it is
        return None
    factory: LoopFactory = uvloop.new_event_loop
    return factory


def loop_name(environ: Mapping[str, str] | None = None) -> str:
    """``uvloop`` or ``asyncio``: which loop :func:`run` would use (for logs and benchmark labels)."""
    return "asyncio" if loop_factory(environ) is None else "uvloop"


def run(main: Coroutine[Any, Any, T], environ: Mapping[str, str] | None = None) -> T:
    """``asyncio.run(main)`` on the configured loop (a new loop, closed afterwards, as ``asyncio.run``)."""
    try:
        factory = loop_factory(environ)
    except SettingsError:
        main.close()  # never awaited: close it so Python does not warn about it
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
