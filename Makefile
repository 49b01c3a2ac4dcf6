# The two commands a new user needs: `make up` (run the system with demo data) and `make test`.
# Both create .venv on first use with nothing but python3 (>= 3.11) and pip. `make up` installs only what
# running needs (`pip install -e .`); `make test` adds the test and lint tools (the `dev` extra), so a
# `make test` after a `make up` upgrades the same venv, and a `make up` after a `make test` finds it complete.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
STAMP  := $(VENV)/.installed

.PHONY: up run test test-unit test-fast lint bench package clean

$(VENV)/bin/pip:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/pip
	$(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(VENV)/bin/pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

up: $(RUN_STAMP)  ## run NATS + aggregator + every collector + simulators
	$(BIN)/inferwatch up --demo

run: $(RUN_STAMP)  ## run against real upstreams configured in the environment
	$(BIN)/inferwatch up

test: $(STAMP)  ## system packages (when root), lint, types, the whole suite; real vLLM/LiteLLM venvs (cached) before the slow tier
	./scripts/system-deps
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q -m "not slow"
	$(BIN)/python -m scripts.real_vllm install && $(BIN)/python -m scripts.real_litellm install \
		|| echo "real vLLM/LiteLLM venvs not built: their slow tests skip (CI fails them)" >&2
	$(BIN)/pytest -q -m slow --timeout 300

test-unit: $(STAMP)  ## tests/unit only: pure, no nats-server, no subprocess, no network server
	$(BIN)/pytest -q tests/unit

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow and not system" -x

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/mypy

bench: $(STAMP)  ## every benchmark, ratios against baselines measured in the same run
	$(BIN)/python bench/run_all.py

package: $(STAMP)  ## sdist + wheel into dist/, checked by twine (tests/integration/test_layout_wheel.py does the same in CI)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache .hypothesis
