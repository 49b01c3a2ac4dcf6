"""A Hugging Face Hub model-API simulator: ``GET /api/models/{org}/{name}`` for every model the demo serves.

Bodies carry the fields the real API returns by default and the catalog reads (``id``, ``pipeline_tag``,
``tags``, ``cardData.license``, ``gated``, ``private``, ``config.quantization_config``, ``safetensors``,
``siblings``). Like the Hub: a private or unknown repo answers 401 to an anonymous caller and 404 to an
authenticated one without access, an invalid token 401 everywhere, a restricted repo 403. Knobs for tests:
``rate_limited`` (the next N requests answer 429 with ``Retry-After``), ``fail_status`` (every request answers
it), ``delay_s`` (slow answers), and a log of every request (``requests``, ``count()``, ``authorizations``).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from inferwatch.simulators.demo import Demo

PRIVATE_REPO = "inferwatch-demo/private-finetune"
RESTRICTED_REPO = "inferwatch-demo/restricted-model"


@dataclass(frozen=True)
class Weights:
    """A model's safetensors weights: parameter count per dtype, number of shards, quantisation method."""

    params: dict[str, int]
    shards: int = 1
    quant_method: str = ""


def _model(
    repo_id: str,
    *,
    pipeline_tag: str,
    license_: str,
    weights: Weights,
    model_type: str,
    library: str = "transformers",
    gated: bool | str = False,
    extra_tags: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One ``/api/models/{repo_id}`` body, shaped like the Hub's (only `PRIVATE_REPO` is private)."""
    params, shards, quant_method = weights.params, weights.shards, weights.quant_method
    author = repo_id.split("/", 1)[0]
    config: dict[str, Any] = {"architectures": [_ARCH.get(model_type, "AutoModel")], "model_type": model_type}
    tags = [
        library,
        "safetensors",
        model_type,
        pipeline_tag,
        *extra_tags,
        f"license:{license_}",
        "autotrain_compatible",
        "endpoints_compatible",
        "region:us",
    ]
    if quant_method:
        config["quantization_config"] = {"quant_method": quant_method, "bits": 4}
        tags.insert(3, quant_method)
        tags.insert(4, "4-bit")
    files = [
        ".gitattributes",
        "README.md",
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        *(f"model-{i:05d}-of-{shards:05d}.safetensors" for i in range(1, shards + 1)),
    ]
    if shards > 1:
        files.append("model.safetensors.index.json")
    return {
        "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
        "id": repo_id,
        "modelId": repo_id,
        "author": author,
        "sha": hashlib.sha1(b"sha:" + repo_id.encode()).hexdigest(),
        "private": repo_id == PRIVATE_REPO,
        "gated": gated,
        "disabled": False,
        "downloads": 120_000,
        "likes": 850,
        "library_name": library,
        "pipeline_tag": pipeline_tag,
        "tags": tags,
        "config": config,
        "cardData": {"license": license_, "pipeline_tag": pipeline_tag, "library_name": library},
        "siblings": [{"rfilename": f} for f in files],
        "safetensors": {"parameters": params, "total": sum(params.values())},
        "createdAt": "2025-04-27T03:52:57.000Z",
        "lastModified": "2025-07-26T03:49:13.000Z",
    }


_ARCH = {
    "qwen3": "Qwen3ForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "gemma3": "Gemma3ForConditionalGeneration",
    "xlm-roberta": "XLMRobertaModel",
}


def demo_models() -> dict[str, dict[str, Any]]:
    """Every repo the demo simulators serve (vLLM fleet, Docker containers), plus an AWQ and two embedders."""
    models = [
        _model(
            "Qwen/Qwen3-8B",
            pipeline_tag="text-generation",
            license_="apache-2.0",
            model_type="qwen3",
            weights=Weights({"BF16": 8190735360}, shards=5),
            extra_tags=("conversational",),
        ),
        _model(
            "Qwen/Qwen3-8B-AWQ",
            pipeline_tag="text-generation",
            license_="apache-2.0",
            model_type="qwen3",
            weights=Weights({"I32": 1109917696, "F16": 1244659712}, shards=2, quant_method="awq"),
        ),
        _model(
            "Qwen/Qwen2.5-32B-Instruct",
            pipeline_tag="text-generation",
            license_="apache-2.0",
            model_type="qwen2",
            weights=Weights({"BF16": 32763876352}, shards=17),
            extra_tags=("conversational",),
        ),
        _model(
            "meta-llama/Llama-3.1-8B-Instruct",
            pipeline_tag="text-generation",
            license_="llama3.1",
            model_type="llama",
            weights=Weights({"BF16": 8030261248}, shards=4),
            gated="manual",
        ),
        _model(
            "meta-llama/Llama-2-13b-chat-hf",
            pipeline_tag="text-generation",
            license_="llama2",
            model_type="llama",
            weights=Weights({"F16": 13015864320}, shards=3),
            gated="manual",
        ),
        _model(
            "mistralai/Mistral-7B-Instruct-v0.3",
            pipeline_tag="text-generation",
            license_="apache-2.0",
            model_type="mistral",
            weights=Weights({"BF16": 7248023552}, shards=3),
            gated="auto",
        ),
        _model(
            "google/gemma-3-12b-it",
            pipeline_tag="image-text-to-text",
            license_="gemma",
            model_type="gemma3",
            weights=Weights({"BF16": 12187325040}, shards=5),
            gated="manual",
        ),
        _model(
            "BAAI/bge-m3",
            pipeline_tag="sentence-similarity",
            license_="mit",
            model_type="xlm-roberta",
            weights=Weights({"F32": 567754752}),
            library="sentence-transformers",
        ),
        _model(
            "BAAI/bge-reranker-v2-m3",
            pipeline_tag="text-classification",
            license_="apache-2.0",
            model_type="xlm-roberta",
            weights=Weights({"F32": 567755777}),
            library="sentence-transformers",
        ),
        _model(
            PRIVATE_REPO,
            pipeline_tag="text-generation",
            license_="other",
            model_type="llama",
            weights=Weights({"BF16": 8030261248}, shards=4),
        ),
        _model(
            RESTRICTED_REPO,
            pipeline_tag="text-generation",
            license_="other",
            model_type="llama",
            weights=Weights({"BF16": 8030261248}, shards=4),
            gated="manual",
        ),
    ]
    return {m["id"]: m for m in models}


@dataclass
class SimulatedHub:
    """State of the simulated Hub.

    Attributes:
        models: bodies by repo id.
        private: repos readable only with a token in ``private_access``.
        restricted: repos answering 403 (the caller has no access).
        tokens: valid bearer tokens (any other token is refused with 401).
        private_access: tokens that may read the private repos.
        rate_limited: the next this-many requests answer 429.
        retry_after_s: their ``Retry-After``.
        fail_status: when set, every request answers this status (500, 503…).
        delay_s: wait this long before answering (timeouts).
        requests: ``(repo_id, status, monotonic time)`` of every request.
        authorizations: the ``Authorization`` header of every request (``""`` when absent).
    """

    models: dict[str, dict[str, Any]] = field(default_factory=demo_models)
    private: set[str] = field(default_factory=lambda: {PRIVATE_REPO})
    restricted: set[str] = field(default_factory=lambda: {RESTRICTED_REPO})
    tokens: set[str] = field(default_factory=set)
    private_access: set[str] = field(default_factory=set)
    rate_limited: int = 0
    retry_after_s: int = 1
    fail_status: int | None = None
    delay_s: float = 0.0
    requests: list[tuple[str, int, float]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)

    def count(self, repo_id: str | None = None, status: int | None = None) -> int:
        """Requests seen (for one repo, with one status)."""
        return sum(
            1 for r, s, _ in self.requests if (repo_id is None or r == repo_id) and (status is None or s == status)
        )

    def answer(self, repo_id: str, authorization: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Status, JSON body and headers for one request, with the Hub's rules.

        An invalid token is refused everywhere (401); a private or unknown repo answers 401 to an anonymous
        caller and 404 to an authenticated one without access (the Hub never confirms a private repo exists).
        """
        token = authorization[len("Bearer ") :].strip() if authorization.startswith("Bearer ") else ""
        if self.rate_limited > 0:
            self.rate_limited -= 1
            return (
                429,
                {"error": "You have exceeded our hourly quotas for action: api. Please log in or retry later."},
                {"Retry-After": str(self.retry_after_s)},
            )
        if self.fail_status is not None:
            return self.fail_status, {"error": "Internal Error - We're working hard to fix this!"}, {}
        if token and token not in self.tokens:
            return (
                401,
                {"error": "Invalid credentials in Authorization header"},
                {"X-Error-Message": "Invalid credentials in Authorization header"},
            )
        body = self.models.get(repo_id)
        if body is None or (repo_id in self.private and token not in self.private_access):
            if token:
                return 404, {"error": "Repository not found"}, {"X-Error-Code": "RepositoryNotFound"}
            return 401, {"error": "Invalid username or password."}, {"X-Error-Code": "RepositoryNotFound"}
        if repo_id in self.restricted:
            return (
                403,
                {
                    "error": f"Access to model {repo_id} is restricted. You must have access to it and be "
                    "authenticated to access it. Please log in."
                },
                {"X-Error-Code": "GatedRepo"},
            )
        return 200, body, {}

    async def handle(self, request: web.Request) -> web.Response:
        """``GET /api/models/{org}/{name}``."""
        repo_id = f"{request.match_info['org']}/{request.match_info['name']}"
        authorization = request.headers.get("Authorization", "")
        self.authorizations.append(authorization)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status, body, headers = self.answer(repo_id, authorization)
        self.requests.append((repo_id, status, time.monotonic()))
        return web.json_response(
            body, status=status, headers={"X-Request-Id": f"Root=1-{len(self.requests):08x}", **headers}
        )


def app(hub: SimulatedHub) -> web.Application:
    """The aiohttp application of one simulated Hub."""
    application = web.Application()
    application.add_routes([web.get("/api/models/{org}/{name}", hub.handle)])
    return application


async def serve(hub: SimulatedHub, host: str = "127.0.0.1", port: int = 0) -> tuple[str, web.AppRunner]:
    """Serve on loopback; returns the base URL (what ``HF_ENDPOINT`` takes) and the runner to clean up."""
    runner = web.AppRunner(app(hub), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    return f"http://{host}:{bound}", runner


async def start_demo() -> Demo:
    """Hook for ``inferwatch up --demo``: the model catalog enriches from this Hub (``HF_ENDPOINT``)."""
    url, runner = await serve(SimulatedHub())
    return Demo(env={"HF_ENDPOINT": url}, runners=[runner])
