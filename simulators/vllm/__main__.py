"""``python -m inferwatch.simulators.vllm --count N``: serve N simulated vLLM servers."""

from inferwatch.simulators.vllm.fleet import main

main()
