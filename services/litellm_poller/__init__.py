"""litellm-poller: LiteLLM proxy health, model routes, usage, cost and fallbacks."""
