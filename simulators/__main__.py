"""``python -m inferwatch.simulators``: start every demo simulator and write the environment that points
the collectors at them (JSON, to ``--env-file``), then serve until SIGTERM/SIGINT.

A simulator module takes part by defining ``async def start_demo() -> Demo``. The scenarios the demos declare
are served by one control API (``simulators.scenarios``), whose URL goes into the environment as
``INFERWATCH_SIM_CONTROL_URL`` (``INFERWATCH_SIM_CONTROL_PORT`` fixes its port; default: a free one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import logging
import os
import pkgutil
import signal
from pathlib import Path

from inferwatch import simulators
from inferwatch.simulators.demo import Demo
from inferwatch.simulators.scenarios import ScenarioRegistry, serve

log = logging.getLogger("inferwatch.simulators")


async def _main(env_file: Path | None) -> None:
    demos: list[Demo] = []
    env: dict[str, str] = {}
    registry = ScenarioRegistry()
    for info in sorted(pkgutil.iter_modules(simulators.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name == "demo":
            continue
        module = importlib.import_module(f"inferwatch.simulators.{info.name}")
        start = getattr(module, "start_demo", None)
        if start is None:
            continue
        demo: Demo = await start()
        demos.append(demo)
        env.update(demo.env)
        for scenario in demo.scenarios:
            registry.add(scenario)
    control_url, control_runner = await serve(registry, port=int(os.environ.get("INFERWATCH_SIM_CONTROL_PORT") or 0))
    env["INFERWATCH_SIM_CONTROL_URL"] = control_url
    if env_file is not None:
        tmp = env_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(env))
        os.replace(tmp, env_file)  # atomic: the supervisor never reads half a file
    else:
        print(json.dumps(env, indent=1), flush=True)  # run by hand: the settings to point collectors at us
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(d.run()) for d in demos if d.run is not None]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await control_runner.cleanup()
    for demo in reversed(demos):
        await demo.stop()


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m inferwatch.simulators")
    parser.add_argument("--env-file", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_main(args.env_file))


if __name__ == "__main__":
    main()
