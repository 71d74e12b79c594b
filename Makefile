# The two commands: `make run` (mcpd on the embedded SQLite default) and `make test`.
# Both set up everything they need in .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEV_STAMP := $(VENV)/.installed-dev-stamp
# pytest-xdist workers for `make test` (TEST_WORKERS=0: one process, as before)
TEST_WORKERS ?= 2

.PHONY: install install-dev run test lint typecheck policy-lint unit bench services clean

# `make run` needs the runtime dependencies only; `make test` (and its parts) the dev extras too
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	@# casbin-sqlalchemy-adapter depends on the old `casbin` name; never let the new one in too
	@! $(BIN)/python -m pip show pycasbin >/dev/null 2>&1 || \
	  (echo "pycasbin and casbin are both installed: they overwrite each other" >&2; exit 1)
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@! $(BIN)/python -m pip show pycasbin >/dev/null 2>&1 || \
	  (echo "pycasbin and casbin are both installed: they overwrite each other" >&2; exit 1)
	touch $(DEV_STAMP)

install: $(STAMP)

install-dev: $(DEV_STAMP)

run: install
	$(BIN)/mcpd serve

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo

typecheck: install-dev
	$(BIN)/mypy

policy-lint: install-dev
	$(BIN)/mcpctl policy lint --strict

services:
	./scripts/ensure-services.sh
	./scripts/ensure-node-tools.sh

unit: install-dev services
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --durations=25 --cov --cov-report=term:skip-covered

test: lint typecheck policy-lint unit

bench: install-dev services
	$(BIN)/python bench/authz.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage
