"""Pure reading of Docker Engine API JSON: which containers serve vLLM, and what they serve. No I/O.

Input is the ``/containers/{id}/json`` (inspect) document. Identification trusts, in order: labels
(``inferwatch.kind``), image name patterns, the command line (``vllm serve``,
``python -m vllm.entrypoints.openai.api_server``), then ``VLLM_*`` environment names. Secrets never
leave this module: environment *values* other than GPU/CUDA settings are not read, and the command
line itself is never put into an event.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from inferwatch.contracts.discovery import ScrapeTarget
from inferwatch.contracts.docker import ContainerInfo, ContainerKind, LifecycleAction, LogSignature

DEFAULT_VLLM_IMAGES: tuple[str, ...] = (
    "vllm/vllm-openai",
    "vllm/vllm-openai-rocm",
    "vllm/vllm-openai-cpu",
    "vllm/vllm-openai-xpu",
    "rocm/vllm",
    "rocm/vllm-dev",
    "*/vllm/vllm-openai*",
)
VLLM_PORT_DEFAULT = 8000
KEPT_LABEL_PREFIXES = ("inferwatch.", "com.docker.compose.project", "com.docker.compose.service")
MAX_KEPT_LABELS = 16
MAX_LABEL_VALUE = 128
_VERSION_TAG = re.compile(r"^v?(\d+\.\d+(?:\.\d+)?(?:[.+-]?(?:post|rc|dev)\d*)?)")


@dataclass(frozen=True)
class Classification:
    """Why a container was (or was not) recognised as vLLM.

    Attributes:
        kind: ``vllm`` or ``""``.
        evidence: ``label`` / ``image`` / ``command`` / ``env`` / ``""``.
    """

    kind: ContainerKind
    evidence: str


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _str_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in _list(value) if isinstance(v, str)]


def env_map(inspect: Mapping[str, Any]) -> dict[str, str]:
    """``Config.Env`` (``["K=V", …]``) as a dict."""
    out: dict[str, str] = {}
    for item in _str_list(_dict(inspect.get("Config")).get("Env")):
        key, _, value = item.partition("=")
        out[key] = value
    return out


def command_line(inspect: Mapping[str, Any]) -> list[str]:
    """The process argv: ``Path`` + ``Args`` when present, else ``Config.Entrypoint`` + ``Config.Cmd``."""
    path = inspect.get("Path")
    if isinstance(path, str) and path:
        return [path, *_str_list(inspect.get("Args"))]
    config = _dict(inspect.get("Config"))
    return [*_str_list(config.get("Entrypoint")), *_str_list(config.get("Cmd"))]


def image_repository(image: str) -> str:
    """``registry:5000/vllm/vllm-openai:v0.8.5@sha256:…`` → ``registry:5000/vllm/vllm-openai``."""
    image = image.split("@", 1)[0]
    slash = image.rfind("/")
    colon = image.rfind(":")
    return image[:colon] if colon > slash else image


def image_tag(image: str) -> str:
    """The tag of an image reference, ``""`` when none."""
    image = image.split("@", 1)[0]
    slash = image.rfind("/")
    colon = image.rfind(":")
    return image[colon + 1 :] if colon > slash else ""


def _image_matches(image: str, patterns: Iterable[str]) -> bool:
    repo = image_repository(image)
    short = repo.removeprefix("docker.io/").removeprefix("library/")
    for pattern in patterns:
        if "*" in pattern or "?" in pattern:
            if fnmatch.fnmatchcase(repo, pattern) or fnmatch.fnmatchcase(short, pattern):
                return True
        elif short == pattern or repo == pattern or repo.endswith("/" + pattern):
            return True
    return False


def _is_vllm_command(argv: Sequence[str]) -> bool:
    for i, arg in enumerate(argv):
        base = arg.rsplit("/", 1)[-1]
        if base == "vllm" and i + 1 < len(argv) and argv[i + 1] == "serve":
            return True
        if arg.startswith("vllm.entrypoints"):
            return True
    return False


def classify(inspect: Mapping[str, Any], image_patterns: Sequence[str] = DEFAULT_VLLM_IMAGES) -> Classification:
    """Is this container a vLLM server? Labels win (``inferwatch.kind=other`` opts a container out)."""
    config = _dict(inspect.get("Config"))
    labels = {k: v for k, v in _dict(config.get("Labels")).items() if isinstance(v, str)}
    if kind := labels.get("inferwatch.kind", "").strip().lower():
        return Classification("vllm" if kind == "vllm" else "", "label")
    image = str(config.get("Image") or inspect.get("Image") or "")
    if _image_matches(image, image_patterns):
        return Classification("vllm", "image")
    if _is_vllm_command(command_line(inspect)):
        return Classification("vllm", "command")
    if any(k.startswith("VLLM_") for k in env_map(inspect)):
        return Classification("vllm", "env")
    return Classification("", "")


@dataclass(frozen=True)
class VllmArgs:
    """What the vLLM command line says (only non-secret settings are kept)."""

    model_path: str = ""
    served_names: tuple[str, ...] = ()
    port: int = 0
    tensor_parallel_size: int = 0
    quantization: str = ""
    max_model_len: int = 0
    grpc: bool = False


_FLAG_ALIASES = {"-tp": "--tensor-parallel-size", "-q": "--quantization"}
_VALUE_FLAGS = {
    "--model",
    "--port",
    "--tensor-parallel-size",
    "--quantization",
    "--max-model-len",
    "--host",
    "--api-key",
    "--served-model-name",
    "--grpc-port",
}


def _to_int(text: str) -> int:
    text = text.strip().lower()
    try:
        if text.endswith("k"):
            return int(float(text[:-1]) * 1024)
        return int(text)
    except ValueError:
        return 0


def parse_vllm_args(argv: Sequence[str]) -> VllmArgs:
    """Read ``--model``, the positional model of ``vllm serve``, ``--served-model-name a b``,
    ``--port``, ``--tensor-parallel-size``/``-tp``, ``--quantization``/``-q``, ``--max-model-len``, ``--grpc``.
    """
    values: dict[str, str] = {}
    served: list[str] = []
    positional = ""
    grpc = False
    after_serve = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "serve" and i > 0 and argv[i - 1].rsplit("/", 1)[-1] == "vllm":
            after_serve = True
            i += 1
            continue
        if arg.startswith("-"):
            flag, eq, inline = arg.partition("=")
            flag = _FLAG_ALIASES.get(flag, flag).replace("_", "-")
            if flag == "--grpc":
                grpc = True
            elif flag == "--served-model-name":
                if eq:
                    served.append(inline)
                else:
                    while i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                        served.append(argv[i + 1])
                        i += 1
            elif eq:
                values[flag] = inline
            elif i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                values[flag] = argv[i + 1]
                i += 1
        elif after_serve and not positional:
            positional = arg
        i += 1
    model = values.get("--model", "") or positional
    return VllmArgs(
        model_path=model,
        served_names=tuple(served) or ((model,) if model else ()),
        port=_to_int(values.get("--port", "")),
        tensor_parallel_size=_to_int(values.get("--tensor-parallel-size", "")),
        quantization=values.get("--quantization", ""),
        max_model_len=_to_int(values.get("--max-model-len", "")),
        grpc=grpc,
    )


def vllm_version(image: str, labels: Mapping[str, str]) -> str:
    """The vLLM version from the image tag (``v0.8.5`` → ``0.8.5``), else the OCI version label, else ``""``."""
    match = _VERSION_TAG.match(image_tag(image))
    if match:
        return match.group(1)
    oci = labels.get("org.opencontainers.image.version", "")
    match = _VERSION_TAG.match(oci)
    return match.group(1) if match else ""


def _visible_devices(value: str) -> list[str]:
    value = value.strip()
    if not value or value.lower() in ("void", "none", "no-devices"):
        return []
    if value.lower() == "all":
        return ["all"]
    return [v.strip() for v in value.split(",") if v.strip()]


def gpu_assignment(inspect: Mapping[str, Any], env: Mapping[str, str] | None = None) -> list[str]:
    """GPUs given to the container: ``DeviceRequests`` IDs, or ``["all"]`` for ``--gpus all``,
    or ``NVIDIA_VISIBLE_DEVICES`` / ``CUDA_VISIBLE_DEVICES`` ids; ``["count:N"]`` when only a count is known.
    """
    env = env if env is not None else env_map(inspect)
    count = 0
    for request in _list(_dict(inspect.get("HostConfig")).get("DeviceRequests")):
        request = _dict(request)
        caps = [c for group in _list(request.get("Capabilities")) for c in _str_list(group)]
        driver = str(request.get("Driver") or "")
        if "gpu" not in caps and driver not in ("nvidia", "cdi"):
            continue
        ids = _str_list(request.get("DeviceIDs"))
        if ids:
            return [i.removeprefix("nvidia.com/gpu=") for i in ids]
        req_count = request.get("Count")
        if isinstance(req_count, int):
            if req_count < 0:
                count = -1
            elif req_count > 0 and count >= 0:
                count += req_count
    explicit = _visible_devices(env.get("NVIDIA_VISIBLE_DEVICES", ""))
    if explicit and explicit != ["all"]:
        return explicit
    if count < 0:
        return ["all"]
    cuda = _visible_devices(env.get("CUDA_VISIBLE_DEVICES", ""))
    if cuda and cuda != ["all"]:
        return cuda
    if count > 0:
        return [f"count:{count}"]
    return explicit  # ["all"] from the runtime env, or []


def cuda_version(env: Mapping[str, str]) -> str:
    """``CUDA_VERSION`` of the image, else the ``cuda>=X.Y`` of ``NVIDIA_REQUIRE_CUDA``."""
    if version := env.get("CUDA_VERSION", "").strip():
        return version
    match = re.search(r"cuda>=([\d.]+)", env.get("NVIDIA_REQUIRE_CUDA", ""))
    return match.group(1) if match else ""


def parse_docker_time(text: object) -> float:
    """Docker's RFC 3339 timestamps (nanoseconds, ``Z``) → Unix seconds; 0 for the zero time or garbage."""
    if not isinstance(text, str) or not text or text.startswith("0001-01-01"):
        return 0.0
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", text.strip())
    if not match:
        return 0.0
    base, frac, tz = match.groups()
    try:
        stamp = datetime.fromisoformat(base + ("+00:00" if tz in (None, "Z") else tz)).timestamp()
    except ValueError:
        return 0.0
    return stamp + (float("0" + frac) if frac else 0.0)


def scrape_url(
    inspect: Mapping[str, Any],
    port: int,
    *,
    publish_host: str = "127.0.0.1",
    mode: str = "auto",
) -> str:
    """The base URL to scrape the container's port ``port``.

    ``auto``: the host network (``publish_host``), else a published port (its ``HostIp``, or
    ``publish_host`` for a wildcard), else the container IP on its first network with one.
    ``published`` / ``container`` force one of the two.
    """
    host_config = _dict(inspect.get("HostConfig"))
    settings = _dict(inspect.get("NetworkSettings"))
    if str(host_config.get("NetworkMode") or "") == "host":
        return f"http://{_host(publish_host)}:{port}"
    if mode in ("auto", "published"):
        for binding in _list(_dict(settings.get("Ports")).get(f"{port}/tcp")):
            binding = _dict(binding)
            host_port = str(binding.get("HostPort") or "")
            if not host_port:
                continue
            host_ip = str(binding.get("HostIp") or "")
            host = publish_host if host_ip in ("", "0.0.0.0", "::") else host_ip
            return f"http://{_host(host)}:{host_port}"
        if mode == "published":
            return ""
    for network in _dict(settings.get("Networks")).values():
        ip = str(_dict(network).get("IPAddress") or "")
        if ip:
            return f"http://{ip}:{port}"
    ip = str(settings.get("IPAddress") or "")
    return f"http://{ip}:{port}" if ip else ""


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def kept_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """A bounded subset of labels for events: ``inferwatch.*`` and the compose project/service."""
    out: dict[str, str] = {}
    for key in sorted(labels):
        if key.startswith(KEPT_LABEL_PREFIXES) and len(out) < MAX_KEPT_LABELS:
            out[key] = str(labels[key])[:MAX_LABEL_VALUE]
    return out


def container_info(
    inspect: Mapping[str, Any],
    *,
    image_patterns: Sequence[str] = DEFAULT_VLLM_IMAGES,
    publish_host: str = "127.0.0.1",
    address_mode: str = "auto",
) -> ContainerInfo:
    """One inspect document → `ContainerInfo` (every container; vLLM fields only for vLLM ones)."""
    config = _dict(inspect.get("Config"))
    state = _dict(inspect.get("State"))
    labels = {k: v for k, v in _dict(config.get("Labels")).items() if isinstance(v, str)}
    image = str(config.get("Image") or inspect.get("Image") or "")
    env = env_map(inspect)
    kind = classify(inspect, image_patterns).kind
    common: dict[str, Any] = {
        "id": str(inspect.get("Id") or ""),
        "name": str(inspect.get("Name") or "").lstrip("/"),
        "image": image,
        "state": str(state.get("Status") or ""),
        "health": str(_dict(state.get("Health")).get("Status") or ""),
        "started_at": parse_docker_time(state.get("StartedAt")),
        "restart_count": inspect.get("RestartCount") if isinstance(inspect.get("RestartCount"), int) else 0,
        "kind": kind,
        "labels": kept_labels(labels),
        "gpus": gpu_assignment(inspect, env),
        "cuda_version": cuda_version(env),
    }
    if kind != "vllm":
        return ContainerInfo(**common)
    args = parse_vllm_args(command_line(inspect))
    port = _to_int(labels.get("inferwatch.port", "")) or args.port or VLLM_PORT_DEFAULT
    model = labels.get("inferwatch.model", "")
    models = [model] if model else list(args.served_names)
    address = scrape_url(inspect, port, publish_host=publish_host, mode=address_mode)
    return ContainerInfo(
        **common,
        vllm_version=vllm_version(image, labels),
        models=models,
        model_path=args.model_path,
        tensor_parallel_size=args.tensor_parallel_size,
        quantization=args.quantization,
        max_model_len=args.max_model_len,
        scrape_url=_grpc(address) if args.grpc and address else address,
    )


def _grpc(url: str) -> str:
    """``vllm serve --grpc`` serves no HTTP: its address is read through the gRPC health service."""
    return "grpc://" + url.removeprefix("http://")


def wanted(
    info: ContainerInfo,
    include_labels: Mapping[str, str],
    exclude_labels: Mapping[str, str],
    include_names: Sequence[str],
    exclude_names: Sequence[str],
) -> bool:
    """Include/exclude filters: labels ``k=v`` (``k`` alone: any value) and name globs. Exclusions win."""
    labels = info.labels

    def has(filters: Mapping[str, str]) -> bool:
        return any(k in labels and (not v or labels[k] == v) for k, v in filters.items())

    if has(exclude_labels) or any(fnmatch.fnmatchcase(info.name, p) for p in exclude_names):
        return False
    if include_labels and not has(include_labels):
        return False
    return not include_names or any(fnmatch.fnmatchcase(info.name, p) for p in include_names)


def scrape_target(info: ContainerInfo, host: str) -> ScrapeTarget | None:
    """The vLLM target a running container offers, or None (not vLLM, not running, no address)."""
    if info.kind != "vllm" or info.state != "running" or not info.scrape_url:
        return None
    labels = {"host": host, "model": info.models[0]} if info.models else {"host": host}
    return ScrapeTarget(
        kind="vllm",
        url=info.scrape_url,
        container_id=info.id,
        container_name=info.name,
        gpus=list(info.gpus),
        version=info.vllm_version,
        labels={k: v for k, v in labels.items() if v},
    )


_LIFECYCLE_ACTIONS: dict[str, LifecycleAction] = {action: action for action in get_args(LifecycleAction)}


def lifecycle_action(event: Mapping[str, Any]) -> LifecycleAction | None:
    """The action of a Docker ``/events`` message when docker-watcher follows it (``health_status: healthy``
    is ``health_status``), else None."""
    raw = str(event.get("Action") or event.get("status") or "").split(":", 1)[0].strip()
    return _LIFECYCLE_ACTIONS.get(raw)


LOG_SIGNATURES: tuple[tuple[LogSignature, re.Pattern[str]], ...] = (
    ("cuda_oom", re.compile(r"CUDA out of memory|torch\.(?:cuda\.)?OutOfMemoryError|CUDA error: out of memory")),
    (
        "nccl_error",
        re.compile(
            r"NCCL error|ncclInternalError|ncclSystemError|ncclUnhandledCudaError"
            r"|ncclRemoteError|NCCL (?:WARN )?.*(?:timeout|Timeout|watchdog)"
        ),
    ),
    (
        "engine_dead",
        re.compile(
            r"EngineDeadError|Engine core .*died|EngineCore .*(?:died|failed)"
            r"|EngineCore encountered a fatal error|AsyncEngineDeadError"
            r"|Background loop has errored already"
        ),
    ),
    (
        "model_load_failed",
        re.compile(
            r"Error (?:while )?loading model|Failed to load model"
            r"|RepositoryNotFoundError|is not a valid model identifier"
            r"|Model architectures? .* (?:is|are) not supported"
            r"|No model weights found|Cannot find model"
        ),
    ),
)
MAX_LOG_LINE = 512


def log_signature(line: str) -> LogSignature | Literal[""]:
    """The known failure signature a log line shows (``cuda_oom``, ``nccl_error``, ``engine_dead``,
    ``model_load_failed``), or ``""``."""
    if len(line) > 8192:
        line = line[:8192]
    for name, pattern in LOG_SIGNATURES:
        if pattern.search(line):
            return name
    return ""


def split_log_stream(buffer: bytes, chunk: bytes, *, max_line: int = 65536) -> tuple[list[str], bytes]:
    """Feed raw log bytes; returns complete lines (decoded, errors replaced) and the unfinished rest.

    A line longer than ``max_line`` is cut, so a log without newlines cannot grow memory.
    """
    data = buffer + chunk
    parts = data.split(b"\n")
    rest = parts.pop()
    if len(rest) > max_line:
        parts.append(rest[:max_line])
        rest = b""
    return [p.decode("utf-8", "replace").rstrip("\r") for p in parts], rest
