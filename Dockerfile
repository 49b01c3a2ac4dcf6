# One image for every inferwatch service: `docker run inferwatch run <service>` (aggregator, docker-watcher,
# vllm-scraper, epp-scraper, litellm-poller, langfuse-ingester, gpu-agent, model-catalog), or
# `inferwatch up --demo` for the all-in-one demo.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY contracts contracts
COPY shared shared
COPY services services
COPY simulators simulators
COPY inferwatch inferwatch
# Both runtime extras: the one image serves every deployment, gRPC vLLM targets and Langfuse DB mode included.
RUN pip install --no-cache-dir --prefix=/install ".[grpc,langfuse-db]"

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home inferwatch
COPY --from=build /install /usr/local
USER 10001
ENV PYTHONUNBUFFERED=1
EXPOSE 9750
ENTRYPOINT ["inferwatch"]
CMD ["run", "aggregator"]
