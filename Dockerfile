# One image for every inferwatch service: `docker run inferwatch run <service>` (aggregator, docker-watcher,
# vllm-scraper, epp-scraper, litellm-poller, langfuse-ingester, gpu-agent, model-catalog), or
# `inferwatch up --demo` for the all-in-one demo.
#
# BASE: any image with python3 (>= 3.11) and its venv module; the default is the public Python image.
#   tests/integration/test_docker_image.py builds it on a Debian bookworm made locally with mmdebstrap.
# WHEELS: a folder of the build context holding inferwatch's wheel and every dependency's (air-gapped builds):
#   `pip wheel --wheel-dir wheels '.[grpc,langfuse-db]'` where an index can be reached, then
#   `docker build --build-arg WHEELS=wheels .` installs from it with `pip install --no-index` (no network).
# EXTRAS: the runtime extras installed (the wheelhouse must hold them); both by default, so the one image serves
#   every deployment, gRPC vLLM targets and the Langfuse DB mode included.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ARG WHEELS=""
ARG EXTRAS="grpc,langfuse-db"
WORKDIR /src
COPY . .
RUN python3 -m venv /opt/inferwatch \
 && if [ -n "$WHEELS" ]; then \
      /opt/inferwatch/bin/pip install --no-cache-dir --no-index --find-links "/src/$WHEELS" "inferwatch[$EXTRAS]"; \
    else \
      /opt/inferwatch/bin/pip install --no-cache-dir "/src[$EXTRAS]"; \
    fi \
 && /opt/inferwatch/bin/pip uninstall --yes pip

FROM ${BASE}
RUN useradd --system --uid 10001 --no-create-home inferwatch
COPY --from=build /opt/inferwatch /opt/inferwatch
USER 10001
# PYTHONDONTWRITEBYTECODE: the root filesystem is read-only in the compose stack and the Kubernetes manifests.
ENV PATH=/opt/inferwatch/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 INFERWATCH_HTTP_HOST=0.0.0.0
EXPOSE 9750
ENTRYPOINT ["inferwatch"]
CMD ["run", "aggregator"]
