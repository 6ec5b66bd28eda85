# The two commands of a fresh machine: `make run` (the main job) and `make test` (the suite).
# Both create .venv from uv.lock first; no PostgreSQL or Docker needed beforehand.
SHELL := /bin/bash
PYTHON ?= python3
# uv from PATH, else the one pip installs for this Python (run as `python -m uv`)
UV ?= $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# tests run in parallel processes (pytest-xdist), one per core up to 4: each has its own server
# (embedded) or its own databases (DATABASE_URL); PYTEST_WORKERS=0 runs them in this process
PYTEST_WORKERS ?= auto

.PHONY: help setup run test lint dev db-stop validate benchmarks clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# setup.py and the .pyx: the compiled ERS walker is rebuilt when its source changes
$(BIN)/fishnet: pyproject.toml uv.lock setup.py platform_assets/logbook/_ers_fast.pyx
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --user --quiet uv==0.13.8
	$(UV) sync --frozen --extra test
	@touch $@

setup: $(BIN)/fishnet  ## create .venv with the locked dependencies

run: setup  ## the main job: migrate, materialise everything on sample data, tick sensors, summary
	$(BIN)/fishnet demo

test: setup  ## the test suite on a real PostgreSQL (DATABASE_URL, else an embedded one)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --maxprocesses 4 $(PYTEST_ARGS)

lint: setup  ## import contracts (import-linter), ruff and mypy
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy platform_assets resources sensors

dev: setup  ## the Dagster UI and daemon on the warehouse database
	$(BIN)/fishnet dev

validate: setup  ## load the code location as Dagster does (dg check defs)
	$(BIN)/dg check defs

benchmarks: setup  ## run the benchmarks (JSON in benchmarks/results/)
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

db-stop:  ## stop the embedded PostgreSQL
	$(BIN)/fishnet db stop

clean: db-stop  ## remove the environment and local state
	rm -rf $(VENV) .state storage logs history schedules .logs_queue
