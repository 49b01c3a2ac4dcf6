"""Install, start and stop a real LiteLLM proxy with mock deployments, by hand or from a test.

    python -m scripts.real_litellm install                    # venv ~/.cache/inferwatch/litellm-<version>/
    python -m scripts.real_litellm start --port 4000 --key sk-…   # prints PID and URL, waits for liveliness
    python -m scripts.real_litellm stop --port 4000

The proxy runs `config` below: ``callbacks: ["prometheus"]``, mock-response deployments for chat, embedding and
rerank (no upstream needed, usage and spend computed by LiteLLM as for a real call), and ``dead-chat`` on a closed
port with a fallback to ``fake-chat``. The master key comes from the environment, never from the config file.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from inferwatch.shared.ports import free_port
from scripts.real_servers import CachedVenv, cache_root, start_process, stop_pidfile, wait_http

VERSION = "1.106.2"
"""The LiteLLM release the poller was built on (captures in tests/fixtures/litellm)."""
VENV = CachedVenv(
    name=f"litellm-{VERSION}",
    # the proxy's Prometheus callback imports prometheus_client, which no extra of litellm pulls in
    requirements=(f"litellm[proxy]=={VERSION}", "prometheus-client==0.26.0"),
    probe="import litellm.proxy.proxy_server",
)
INPUT_COST = 0.000002
"""USD per input token of every mock deployment (so spend is a known function of tokens)."""
OUTPUT_COST = 0.000006
"""USD per output token."""
GROUPS = ("fake-chat", "fake-embedding", "fake-rerank", "dead-chat")
"""The model groups the config defines."""


def config(dead_port: int, rerank_port: int) -> dict[str, Any]:
    """The proxy's config; ``dead_port`` is a loopback port nothing listens on, ``rerank_port`` the rerank stub's."""
    costs = {"input_cost_per_token": INPUT_COST, "output_cost_per_token": OUTPUT_COST}
    return {
        "model_list": [
            {
                "model_name": "fake-chat",
                "litellm_params": {
                    "model": "openai/fake-chat",
                    "api_key": "sk-upstream-unused",
                    "mock_response": "Hello from the mock deployment.",
                    **costs,
                },
                "model_info": {"id": "fake-chat-1", "mode": "chat"},
            },
            {
                "model_name": "fake-embedding",
                "litellm_params": {
                    "model": "openai/fake-embedding",
                    "api_key": "sk-upstream-unused",
                    "mock_response": [0.1, 0.2, 0.3],
                    **costs,
                },
                "model_info": {"id": "fake-embedding-1", "mode": "embedding"},
            },
            {
                "model_name": "fake-rerank",
                # no mock_response for rerank in LiteLLM 1.106.2: a Cohere-style stub in the launcher answers
                "litellm_params": {
                    "model": "cohere/fake-rerank",
                    "api_key": "sk-upstream-unused",
                    "api_base": f"http://127.0.0.1:{rerank_port}",
                    **costs,
                },
                "model_info": {"id": "fake-rerank-1", "mode": "rerank"},
            },
            {
                "model_name": "dead-chat",
                "litellm_params": {
                    "model": "openai/dead-chat",
                    "api_key": "sk-upstream-unused",
                    "api_base": f"http://127.0.0.1:{dead_port}/v1",
                    "timeout": 5,
                    **costs,
                },
                "model_info": {"id": "dead-chat-1", "mode": "chat"},
            },
        ],
        "router_settings": {"num_retries": 0, "fallbacks": [{"dead-chat": ["fake-chat"]}], "allowed_fails": 1000},
        "litellm_settings": {"callbacks": ["prometheus"], "num_retries": 0, "request_timeout": 10},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    }


def start(port: int, key: str, dead_port: int, log: Path) -> subprocess.Popen[bytes]:
    """Start the proxy on ``port`` with master key ``key`` as a new process group (the rerank stub inside it)."""
    workdir = Path(tempfile.mkdtemp(prefix="litellm-"))
    cfg = workdir / "config.yaml"
    rerank_port = free_port()
    cfg.write_text(yaml.safe_dump(config(dead_port, rerank_port), sort_keys=False))
    env = {
        "LITELLM_MASTER_KEY": key,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the cost map
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOG": "INFO",
        "HOME": str(workdir),
        "RERANK_STUB_PORT": str(rerank_port),  # prisma and friends write caches there, not into the user's home
    }
    cmd = [
        str(VENV.python),
        str(Path(__file__).with_name("litellm_launcher.py")),
        "--config",
        str(cfg),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return start_process(cmd, env, log)


def _pidfile(port: int) -> Path:
    return cache_root() / "run" / f"litellm-{port}.pid"


def main(argv: list[str] | None = None) -> None:
    """``install``, ``start --port N --key K [--dead-port M]`` or ``stop --port N``."""
    parser = argparse.ArgumentParser(prog="python -m scripts.real_litellm", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["install", "start", "stop"])
    parser.add_argument("--port", type=int, default=4000)
    parser.add_argument("--key", default="sk-local-master", help="the master key")
    parser.add_argument("--dead-port", type=int, default=9, help="closed port for dead-chat (discard)")
    args = parser.parse_args(argv)
    if args.command == "install":
        seconds = VENV.ensure(log=cache_root() / f"{VENV.name}-install.log")
        print(f"venv {VENV.path} ({'cached' if not seconds else f'built in {seconds:.0f} s'})")
    elif args.command == "start":
        VENV.ensure(log=cache_root() / f"{VENV.name}-install.log")
        log = cache_root() / "run" / f"litellm-{args.port}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        proc = start(args.port, args.key, args.dead_port, log)
        _pidfile(args.port).write_text(str(proc.pid))
        waited = wait_http(f"http://127.0.0.1:{args.port}/health/liveliness", 120, proc)
        print(f"LiteLLM {VERSION}: PID {proc.pid}, http://127.0.0.1:{args.port} live after {waited:.0f} s, log {log}")
    else:
        stop_pidfile(_pidfile(args.port))


if __name__ == "__main__":
    main()
