"""``litellm ARGS…`` with a Cohere-style rerank upstream on a loopback port, run by the LiteLLM venv's Python.

LiteLLM 1.106.2 honours ``mock_response`` for chat and embeddings but not for rerank, so the rerank deployment
needs an upstream: this launcher serves one in a thread of the proxy's own process (one process group to stop)
and then runs LiteLLM's CLI. ``RERANK_STUB_PORT`` is its port. The stub ranks the given documents in order and
bills one search unit per call, as Cohere's ``/v1/rerank`` does.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RerankStub(BaseHTTPRequestHandler):
    """``POST …/v1/rerank`` → Cohere's response shape."""

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
        documents = request.get("documents") or []
        results = [{"index": i, "relevance_score": round(1.0 / (i + 1), 4)} for i in range(len(documents))]
        body = json.dumps(
            {
                "id": "rerank-stub",
                "results": results[: request.get("top_n") or None],
                "meta": {"billed_units": {"search_units": 1}},
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the proxy's log is the one that matters."""


if __name__ == "__main__":
    stub = ThreadingHTTPServer(("127.0.0.1", int(os.environ["RERANK_STUB_PORT"])), RerankStub)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    from litellm import run_server

    sys.argv[0] = "litellm"
    sys.exit(run_server())
