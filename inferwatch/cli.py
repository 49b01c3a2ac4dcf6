"""The ``inferwatch`` command: ``up``, ``run SERVICE``, ``status``, ``tail [SUBJECT]``, ``schema``.

``up`` supervises one process tree (see `inferwatch.supervisor`): NATS (the one at ``NATS_URL`` if it
answers, else an embedded ``nats-server``), optionally the demo simulators, then the aggregator and every
collector; whatever dies is restarted with backoff, and Ctrl-C stops them all by PID, NATS last.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import msgspec

from inferwatch import __version__
from inferwatch.contracts import ALL, EVENT_TYPES, decode, subject_address
from inferwatch.contracts.codec import DecodeError
from inferwatch.services import BY_NAME, SERVICES, spec
from inferwatch.shared import eventloop
from inferwatch.shared.bus import Bus, BusSettings
from inferwatch.shared.natsserver import EmbeddedNats, answers
from inferwatch.shared.ports import free_port, port_free
from inferwatch.shared.process import spawn
from inferwatch.shared.service import instance_id, run_service
from inferwatch.shared.settings import Env, SettingsError
from inferwatch.supervisor import SnapshotPublisher, Supervisor, snapshot
from inferwatch.terminal import settings_text, status_text, up_summary

AGGREGATOR = spec("aggregator")


def _wait_for_file(path: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo simulators exited with {proc.returncode}")
        if path.exists():
            with contextlib.suppress(ValueError):
                data: dict[str, str] = json.loads(path.read_text())
                return data
        time.sleep(0.05)
    raise SystemExit("demo simulators did not start in time")


def cmd_up(args: argparse.Namespace) -> int:
    """Run the whole system in one process tree, restarting whatever dies (see `inferwatch.supervisor`)."""
    env = dict(os.environ)
    env.setdefault("INFERWATCH_LOG_FORMAT", "text")
    if not args.verbose:
        env.setdefault("INFERWATCH_LOG_LEVEL", "warning")  # the children's start-up chatter only with --verbose
    nats_url = env.get("NATS_URL", "nats://127.0.0.1:4222").split(",")[0]
    supervisor = Supervisor()
    embedded: EmbeddedNats | None = None
    if answers(nats_url):
        nats_line = f"{nats_url} (existing server)"
    else:
        embedded = EmbeddedNats(jetstream=True)
        nats_url = embedded.start()
        # Restarted on the same port with the same JetStream store: key-value state survives, clients reconnect.
        supervisor.add("nats-server", partial(_restart_nats, embedded), running=embedded.proc, stop_last=True)
        nats_line = f"{nats_url} (embedded nats-server, JetStream on)"
    env["NATS_URL"] = nats_url

    stop = False

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    workdir = Path(tempfile.mkdtemp(prefix="inferwatch-up-"))
    settings = Env(env)
    interval_s = settings.float("INFERWATCH_HEARTBEAT_INTERVAL_S", 5.0)
    instance = instance_id("up")
    publisher = SnapshotPublisher(BusSettings.from_env(settings), instance, interval_s)
    try:
        if args.demo:
            _start_simulators(supervisor, env, workdir / "demo-env.json")
        urls = _start_services(supervisor, env, args.port if port_free(args.port) else free_port())
        print(up_text(args, nats_line, urls, env), end="", flush=True)
        publisher.start()
        while not stop:
            supervisor.check()
            publisher.offer(snapshot(supervisor, instance, interval_s))
            time.sleep(0.2)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        publisher.close()
        supervisor.stop_all()  # NATS after everything else
        if embedded is not None:
            embedded.close()
        shutil.rmtree(workdir, ignore_errors=True)
        print("stopped.", flush=True)


def up_text(args: argparse.Namespace, nats_line: str, urls: dict[str, str], env: dict[str, str]) -> str:
    """What ``inferwatch up`` prints once everything is started: the short summary, and with ``--verbose`` every
    service's URL and every setting the children get (secrets masked)."""
    services = {name: url for name, url in urls.items() if name != AGGREGATOR.name}
    text = f"inferwatch {__version__} up{' --demo' if args.demo else ''}\n" + up_summary(
        nats=nats_line,
        aggregator_url=urls[AGGREGATOR.name],
        services=services,
        scenarios_url=env.get("INFERWATCH_SIM_CONTROL_URL", "") if args.demo else "",
    )
    if args.verbose:
        text += settings_text(services, {k: v for k, v in env.items() if k.startswith(("INFERWATCH_", "NATS_"))})
    return text


def _start_simulators(supervisor: Supervisor, env: dict[str, str], env_file: Path) -> None:
    """Start the demo's simulators and point the collectors at them (``env`` is updated in place)."""
    sim_args = [sys.executable, "-m", "inferwatch.simulators", "--env-file", str(env_file)]
    sim = supervisor.add("simulators", partial(spawn, sim_args, env), restart=False)
    assert sim.proc is not None
    demo_env = _wait_for_file(env_file, sim.proc, 60)
    env.update({k: v for k, v in demo_env.items() if k not in os.environ})  # the user's settings win


def _start_services(supervisor: Supervisor, env: dict[str, str], aggregator_port: int) -> dict[str, str]:
    """Start every registered service, the aggregator first; their base URLs by name."""
    urls = {}
    scheme = "https" if env.get("INFERWATCH_HTTP_TLS_CERT_FILE") else "http"  # every service serves alike
    for service in SERVICES:
        child_env = dict(env)
        port = aggregator_port if service is AGGREGATOR else int(env.get(service.port_variable) or free_port())
        child_env[service.port_variable] = str(port)
        run_args = [sys.executable, "-m", "inferwatch", "run", service.name]
        supervisor.add(service.name, partial(spawn, run_args, child_env))
        urls[service.name] = f"{scheme}://127.0.0.1:{port}"
    return urls


def _restart_nats(embedded: EmbeddedNats) -> subprocess.Popen[bytes]:
    """Start the embedded server again (same port, same store) and return its process."""
    embedded.stop()
    embedded.start()
    assert embedded.proc is not None
    return embedded.proc


def cmd_run(args: argparse.Namespace) -> int:
    """Run one service in this process (what a container runs)."""
    if args.service not in BY_NAME:
        print(f"unknown service {args.service!r}; one of: {', '.join(BY_NAME)}", file=sys.stderr)
        return 2
    try:
        with contextlib.suppress(KeyboardInterrupt):
            eventloop.run(run_service(spec(args.service)))
    except SettingsError as exc:
        print(f"inferwatch run {args.service}: {exc}", file=sys.stderr)
        return 2
    return 0


async def _tail(subject: str, raw_json: bool, count: int) -> int:
    bus = Bus(BusSettings.from_env(), name="inferwatch-tail")
    await bus.connect()
    seen = 0
    done = asyncio.Event()

    async def on_msg(msg: Any) -> None:
        nonlocal seen
        try:
            event = decode(msg.data)
            body = msgspec.json.encode(event).decode()
        except DecodeError as exc:
            body = json.dumps({"undecodable": str(exc)[:200], "bytes": len(msg.data)})
        if raw_json:
            print(json.dumps({"subject": msg.subject, "event": json.loads(body)}), flush=True)
        else:
            print(f"{time.strftime('%H:%M:%S')} {msg.subject}\n  {body[:2000]}", flush=True)
        seen += 1
        if count and seen >= count:
            done.set()

    await bus.subscribe_raw(subject, on_msg)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    await bus.close()
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    """Print live events, decoded."""
    return eventloop.run(_tail(args.subject, args.json, args.count))


def _status_url(args: argparse.Namespace, env: Env) -> str:
    if args.url:
        return str(args.url).rstrip("/")
    port = env.get(AGGREGATOR.port_variable) or str(AGGREGATOR.port)
    return f"http://127.0.0.1:{port}"


def fetch_status(url: str, env: Env, timeout_s: float = 5.0) -> dict[str, Any]:
    """The aggregator's ``/api/status`` (with the bearer token or basic auth the services are configured with).

    Raises:
        httpx.HTTPError: unreachable, or an answer other than 200.
    """
    headers = {"Accept": "application/json"}
    auth: tuple[str, str] | None = None
    if token := env.secret("INFERWATCH_HTTP_AUTH_BEARER_TOKEN"):
        headers["Authorization"] = f"Bearer {token.reveal()}"
    elif (user := env.get("INFERWATCH_HTTP_AUTH_BASIC_USER")) and (
        password := env.secret("INFERWATCH_HTTP_AUTH_BASIC_PASSWORD")
    ):
        auth = (user, password.reveal())
    response = httpx.get(url + "/api/status", headers=headers, auth=auth, timeout=timeout_s)
    response.raise_for_status()
    payload: dict[str, Any] = response.json()
    return payload


def cmd_status(args: argparse.Namespace) -> int:
    """Print the aggregator's status (models, alerts, GPUs, sources) as tables, or JSON; ``--watch`` repeats."""
    env = Env(os.environ)
    url = _status_url(args, env)
    width = max(20, shutil.get_terminal_size((120, 40)).columns // 3)
    try:
        while True:
            try:
                payload = fetch_status(url, env)
            except (httpx.HTTPError, ValueError) as exc:
                print(f"inferwatch status: {url}/api/status: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                if not args.watch:
                    return 1
            else:
                if args.json:
                    print(json.dumps(payload, indent=None if args.watch else 2, sort_keys=True), flush=True)
                else:
                    clear = "\x1b[H\x1b[2J" if args.watch and sys.stdout.isatty() else ""
                    stamp = f"inferwatch status  {url}  {time.strftime('%H:%M:%S')}\n\n"
                    print(clear + stamp + status_text(payload, width=width), end="", flush=True)
            if not args.watch:
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0


def json_schemas() -> dict[str, Any]:
    """JSON Schema of every event type (one document, ``$defs`` shared)."""
    (schemas, components) = msgspec.json.schema_components(EVENT_TYPES, ref_template="#/$defs/{name}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "inferwatch events",
        "oneOf": schemas,
        "$defs": components,
    }


def asyncapi() -> dict[str, Any]:
    """AsyncAPI 3.0 document: one channel per event type, payload schemas from msgspec."""
    (_, components) = msgspec.json.schema_components(EVENT_TYPES, ref_template="#/components/schemas/{name}")
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for t in EVENT_TYPES:
        name = t.__name__
        params = {"source": {"description": "source key, sanitised into one subject token"}}
        if t.SUBJECT_KIND_FIELD:
            params[t.SUBJECT_KIND_FIELD] = {
                "description": f"the event's {t.SUBJECT_KIND_FIELD}, sanitised into one subject token"
            }
        messages[name] = {
            "name": name,
            "title": name,
            "summary": (t.__doc__ or "").strip().split("\n")[0],
            "contentType": "application/msgpack",
            "payload": {"$ref": f"#/components/schemas/{name}"},
        }
        channels[name] = {
            "address": subject_address(t),
            "parameters": params,
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        operations[f"receive{name}"] = {"action": "receive", "channel": {"$ref": f"#/channels/{name}"}}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "inferwatch",
            "version": __version__,
            "description": "Events on NATS: msgpack by default, JSON when the first byte is '{'.",
        },
        "defaultContentType": "application/msgpack",
        "servers": {"nats": {"host": "localhost:4222", "protocol": "nats"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": components},
    }


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of every event, or the AsyncAPI document."""
    doc = asyncapi() if args.format == "asyncapi" else json_schemas()
    print(json.dumps(doc, indent=2, sort_keys=True))
    return 0


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``inferwatch`` console script."""
    parser = argparse.ArgumentParser(prog="inferwatch", description="Event-driven monitoring for LLM serving.")
    parser.add_argument("--version", action="version", version=f"inferwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run NATS (if needed), the aggregator and every collector")
    up.add_argument("--demo", action="store_true", help="also start the simulators and point the collectors at them")
    up.add_argument(
        "--port", type=int, default=AGGREGATOR.port, help=f"aggregator HTTP port (default {AGGREGATOR.port})"
    )
    up.set_defaults(func=cmd_up)
    up.add_argument("--verbose", action="store_true", help="also print every service's URL and every setting")
    status = sub.add_parser("status", help="the aggregator's status page in the terminal (models, alerts, sources)")
    status.add_argument("--url", help="the aggregator's base URL (default http://127.0.0.1:<its port>)")
    status.add_argument("--json", action="store_true", help="the status JSON (one line per poll with --watch)")
    status.add_argument("--watch", action="store_true", help="redraw every --interval seconds until Ctrl-C")
    status.add_argument("--interval", type=float, default=2.0, help="seconds between polls with --watch (default 2)")
    status.set_defaults(func=cmd_status)
    services = "\n".join(f"  {s.name:<18} {s.summary}" for s in SERVICES)
    run = sub.add_parser(
        "run",
        help="run one service in the foreground",
        epilog="services:\n" + services,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("service", help="the service to run (below)")
    run.set_defaults(func=cmd_run)
    tail = sub.add_parser("tail", help="print live events, decoded")
    tail.add_argument("subject", nargs="?", default=ALL)
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.add_argument("--count", type=int, default=0, help="stop after N events")
    tail.set_defaults(func=cmd_tail)
    schema = sub.add_parser("schema", help="print the JSON Schema of every event (or --format asyncapi)")
    schema.add_argument("--format", choices=("jsonschema", "asyncapi"), default="jsonschema")
    schema.set_defaults(func=cmd_schema)
    args = parser.parse_args(argv)
    raise SystemExit(args.func(args))


if __name__ == "__main__":
    main()
