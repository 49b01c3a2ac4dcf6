"""Per-request CPU of the HTTP clients a collector could use: httpx, aiohttp, a minimal client on h11.

A server in a separate process (its CPU is not counted) answers keep-alive ``GET /metrics`` on loopback with
the recorded vLLM V1 exposition (tests/fixtures/vllm-v1-metrics.txt, 58 kB, identity encoding). Each client
makes ``--requests`` GETs over ``--connections`` keep-alive connections at once (a scraper holds one per
target) and reads the whole body; the figure is this process's CPU time (``time.process_time``) per request.
Rounds interleave the clients so a change in machine load hits all alike; the best round of each counts.

* ``httpx``: ``httpx.AsyncClient.build_request`` + ``send(stream=True)`` + ``aiter_raw``, as
  ``UpstreamClient`` used it before it moved to aiohttp;
* ``upstream``: ``inferwatch.shared.http.UpstreamClient.get`` (everything it guarantees, on its transport);
* ``aiohttp``: ``aiohttp.ClientSession.get`` + ``content.iter_any`` (its C llhttp parser);
* ``h11``: a minimal keep-alive HTTP/1.1 client on h11 (pure Python) over asyncio streams;
* ``... uvloop``: the same client on uvloop's event loop (what services run on, shared/eventloop.py); every
  other row runs on asyncio's own loop.

    .venv/bin/python -m bench.bench_http_client [--requests 4000] [--connections 50] [--rounds 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import aiohttp
import h11
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import write_json  # noqa: E402
from inferwatch.shared import eventloop  # noqa: E402
from inferwatch.shared.http import CallPolicy, Limits, RetryPolicy, UpstreamClient, UpstreamMetrics  # noqa: E402

BODY = ROOT / "tests" / "fixtures" / "vllm-v1-metrics.txt"

_SERVER = r"""
import asyncio, sys
body = open(sys.argv[1], "rb").read()
head = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: %d\r\n\r\n" % len(body)
answer = head + body

class Serve(asyncio.Protocol):
    def connection_made(self, transport):
        self.t, self.buf = transport, b""
    def data_received(self, data):
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            _, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self.t.write(answer)

async def main():
    server = await asyncio.get_running_loop().create_server(Serve, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""

Fetch = Callable[[], Awaitable[int]]
Pool = tuple[list[Fetch], Callable[[], Awaitable[None]]]  # one fetch per connection, and a close of them all
Maker = Callable[[str], Awaitable[Pool]]
C = TypeVar("C")


def _pool(clients: list[C], fetch_of: Callable[[C], Fetch], close_one: Callable[[C], Awaitable[None]]) -> Pool:
    """One fetch per client, and a close of every client."""

    async def close() -> None:
        for c in clients:
            await close_one(c)

    return [fetch_of(c) for c in clients], close


class H11Connection:
    """One keep-alive HTTP/1.1 connection driven by h11: the least a correct client does per request."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.conn = h11.Connection(h11.CLIENT)

    async def get(self, path: str) -> bytes:
        """GET ``path`` and return the body (reconnects when the server closed)."""
        if self.writer is None or self.conn.our_state is not h11.IDLE:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.conn = h11.Connection(h11.CLIENT)
        assert self.reader is not None
        request = h11.Request(
            method="GET",
            target=path,
            headers=[("host", f"{self.host}:{self.port}"), ("accept-encoding", "gzip, deflate")],
        )
        self.writer.write(self.conn.send(request) + self.conn.send(h11.EndOfMessage()))
        chunks: list[bytes] = []
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.reader.read(65536))
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("closed mid-response")
        self.conn.start_next_cycle()
        return b"".join(chunks)

    async def aclose(self) -> None:
        """Close the socket."""
        if self.writer is not None:
            self.writer.close()


async def run_round(
    make: Callable[[str], Awaitable[tuple[list[Fetch], Callable[[], Awaitable[None]]]]],
    base: str,
    requests: int,
    body_bytes: int,
) -> float:
    """CPU seconds per request of one client over ``requests`` GETs spread across its connections."""
    fetchers, close = await make(base)
    try:
        for f in fetchers:  # connect and warm up outside the measurement
            await f()
        per_connection = requests // len(fetchers)

        async def drive(f: Fetch) -> int:
            size = 0
            for _ in range(per_connection):
                size += await f()
            return size

        cpu = time.process_time()
        sizes = await asyncio.gather(*(drive(f) for f in fetchers))
        cpu = time.process_time() - cpu
        expected = body_bytes * per_connection
        if any(s != expected for s in sizes):
            raise RuntimeError("a client read a wrong body")
        return cpu / (per_connection * len(fetchers))
    finally:
        await close()


def httpx_client(connections: int) -> Maker:
    async def make(base: str) -> Pool:
        clients = [
            httpx.AsyncClient(base_url=base, headers={"accept-encoding": "gzip, deflate"}) for _ in range(connections)
        ]

        def fetcher(c: httpx.AsyncClient) -> Fetch:
            url = c.build_request("GET", "/metrics").url
            timeout = httpx.Timeout(5.0)

            async def fetch() -> int:
                async with asyncio.timeout(5.0):
                    response = await c.send(c.build_request("GET", url, timeout=timeout), stream=True)
                    try:
                        return sum([len(chunk) async for chunk in response.aiter_raw()])
                    finally:
                        await response.aclose()

            return fetch

        return _pool(clients, fetcher, lambda c: c.aclose())

    return make


def upstream_client(connections: int) -> Maker:
    from prometheus_client import CollectorRegistry

    async def make(base: str) -> Pool:
        metrics = UpstreamMetrics.of(CollectorRegistry())
        policy = CallPolicy(limits=Limits(keepalive_s=60), retry=RetryPolicy(attempts=1))
        clients = [UpstreamClient("bench", base, metrics=metrics, policy=policy) for _ in range(connections)]

        def fetcher(c: UpstreamClient) -> Fetch:
            async def fetch() -> int:
                return len((await c.get("/metrics", endpoint="/metrics")).body)

            return fetch

        return _pool(clients, fetcher, lambda c: c.aclose())

    return make


def aiohttp_client(connections: int) -> Maker:
    async def make(base: str) -> Pool:
        sessions = [
            aiohttp.ClientSession(
                base_url=base,
                headers={"accept-encoding": "gzip, deflate"},
                auto_decompress=False,
                connector=aiohttp.TCPConnector(limit=1, keepalive_timeout=60),
            )
            for _ in range(connections)
        ]
        timeout = aiohttp.ClientTimeout(total=5.0)

        def fetcher(s: aiohttp.ClientSession) -> Fetch:
            async def fetch() -> int:
                async with s.get("/metrics", timeout=timeout, allow_redirects=False) as response:
                    return sum([len(chunk) async for chunk in response.content.iter_any()])

            return fetch

        return _pool(sessions, fetcher, lambda s: s.close())

    return make


def h11_client(connections: int) -> Maker:
    async def make(base: str) -> Pool:
        host, port = base.removeprefix("http://").split(":")
        conns = [H11Connection(host, int(port)) for _ in range(connections)]

        def fetcher(c: H11Connection) -> Fetch:
            async def fetch() -> int:
                async with asyncio.timeout(5.0):
                    return len(await c.get("/metrics"))

            return fetch

        return _pool(conns, fetcher, lambda c: c.aclose())

    return make


def main(argv: list[str] | None = None) -> None:
    """Measure every client, print CPU per request and the ratio to httpx's."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None)
    parser.add_argument("--body", default=str(BODY), help="the file served (/dev/null: an empty body, like /health)")
    args = parser.parse_args(argv)
    body = Path(args.body)
    size = len(body.read_bytes())
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(body)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        base = f"http://127.0.0.1:{int(server.stdout.readline())}"
        clients: dict[str, tuple[Maker, eventloop.LoopFactory | None]] = {
            "httpx": (httpx_client(args.connections), None),
            "upstream": (upstream_client(args.connections), None),
            "aiohttp": (aiohttp_client(args.connections), None),
            "h11": (h11_client(args.connections), None),
        }
        uvloop_factory = eventloop.loop_factory({})  # None where uvloop is not installed: no uvloop rows
        if uvloop_factory is not None:
            clients["upstream uvloop"] = (upstream_client(args.connections), uvloop_factory)
            clients["aiohttp uvloop"] = (aiohttp_client(args.connections), uvloop_factory)
        seen: dict[str, list[float]] = {name: [] for name in clients}
        for _ in range(args.rounds):
            for name, (make, factory) in clients.items():
                with asyncio.Runner(loop_factory=factory) as runner:
                    seen[name].append(runner.run(run_round(make, base, args.requests, size)))
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(10)
    best = {name: min(values) for name, values in seen.items()}
    print(
        f"CPU per keep-alive GET of a {size / 1000:.0f} kB body ({body.name}), "
        f"{args.requests} requests over {args.connections} connections, best of {args.rounds} interleaved rounds:"
    )
    for name, value in best.items():
        spread = ", ".join(f"{1e6 * v:.0f}" for v in seen[name])
        print(f"  {name:<15} {1e6 * value:7.0f} us/request  {value / best['httpx']:.2f}x httpx  (rounds: {spread} us)")
    out = write_json(
        "http_client",
        {
            "requests": args.requests,
            "connections": args.connections,
            "body_bytes": size,
            "cpu_us_per_request_best": {k: round(1e6 * v, 1) for k, v in best.items()},
            "cpu_us_per_request_median": {k: round(1e6 * statistics.median(v), 1) for k, v in seen.items()},
            "ratio_to_httpx": {k: round(v / best["httpx"], 3) for k, v in best.items()},
        },
        args.json,
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
