"""shared/eventloop.py: which loop a service process runs on, and the switch back to asyncio's."""

from __future__ import annotations

import asyncio
import builtins
from typing import Any

import pytest
import uvloop

from inferwatch.shared import eventloop
from inferwatch.shared.settings import SettingsError


async def _running_loop_type() -> type[asyncio.AbstractEventLoop]:
    return type(asyncio.get_running_loop())


def test_uvloop_by_default() -> None:
    assert eventloop.loop_name({}) == "uvloop"
    assert eventloop.run(_running_loop_type(), {}) is uvloop.Loop


def test_the_switch_turns_it_off() -> None:
    environ = {eventloop.EVENT_LOOP_SETTING: "asyncio"}
    assert eventloop.loop_factory(environ) is None
    loop_type = eventloop.run(_running_loop_type(), environ)
    assert not issubclass(loop_type, uvloop.Loop)
    assert issubclass(loop_type, asyncio.BaseEventLoop)


def test_an_unknown_loop_is_a_settings_error_naming_the_variable() -> None:
    coro = _running_loop_type()
    with pytest.raises(SettingsError, match=eventloop.EVENT_LOOP_SETTING):
        eventloop.run(coro, {eventloop.EVENT_LOOP_SETTING: "trio"})
    assert coro.cr_frame is None  # closed, not left to warn "never awaited"


def test_asyncio_loop_where_uvloop_is_not_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_uvloop(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "uvloop":
            raise ImportError("no uvloop on this platform")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    assert eventloop.loop_factory({}) is None
    assert eventloop.loop_name({}) == "asyncio"


def test_run_returns_the_coroutines_result_and_closes_its_loop() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def answer() -> int:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return 42

    assert eventloop.run(answer(), {}) == 42
    assert loops[0].is_closed()
