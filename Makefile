# The two set-up commands are `make demo` and `make test`; each does all the set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
# Most of the suite waits on real servers (Prefect, the API server, Prometheus, PostgreSQL), so two
# pytest workers take it from about 57 to about 44 minutes on 2 cores. Each worker brings up its own session servers on free
# ports; `--dist loadfile` keeps a file on one worker, so a module's fixture is computed once, and
# `--no-loadscope-reorder` keeps the order of tests/conftest.py (the files that take minutes first).
PYTEST_WORKERS ?= 2

.PHONY: setup demo test lint typecheck imports pytest kube-build kube-build-optional prefect-db kube-up kube-down clean

setup: $(VENV)/.synced
	@tools/ensure-debian-package.sh prometheus prometheus "the demo will use embedded metrics"

# Re-synced only when the lock or the project metadata change: a set-up machine adds well under 5 s.
$(VENV)/.synced: uv.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv sync --frozen --quiet
	@touch $@

demo: setup prefect-db
	$(BIN)/canaryflow demo

# Prefect's database for canaryflow's local server, created (or migrated) once, before any run.
prefect-db: setup
	@$(BIN)/canaryflow dev prefect init

test: setup kube-build-optional lint typecheck imports pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

imports: setup
	$(BIN)/lint-imports

pytest: setup
	@tools/ensure-debian-package.sh chromium chromium "the test of the Prefect UI cannot run"
	@tools/ensure-debian-package.sh pg_ctlcluster postgresql "the production-stack test cannot run"
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

kube-build:
	tools/kube/build.sh

# For make test: builds once (about 10 minutes on 2 cores; cached outside the repository, a warm
# cache returns at once); without Go it says so in one line and the tests that need it skip.
kube-build-optional:
	@if command -v go >/dev/null 2>&1; then tools/kube/build.sh >/dev/null; else \
	  echo "kube-build: Go is not installed, so the local control plane cannot be built; the tests that need it skip (and fail on CI)"; fi

kube-up: setup kube-build
	$(BIN)/canaryflow dev kube up

kube-down: setup
	$(BIN)/canaryflow dev kube down

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
