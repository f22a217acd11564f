# The two commands: `make run` (serve the bundled sample) and `make test` (the test suite).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export CITEQA_MODEL_CACHE ?= $(CURDIR)/var/models

.PHONY: run test test-fast install lint format bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed ($(PYTHON) not found); set PYTHON=..."; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,eval,peers]'
	touch $(STAMP)

install: $(STAMP)

## Prepare the model (once), index the bundled sample report if the index is empty, serve on :8000.
run: install
	$(BIN)/citeqa serve --ingest-if-empty data/sample

## Run the whole test suite (real model, real server, real browser).
test: install
	bash scripts/ensure-chromium.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/pytest

## The unit tests alone (no real model, server or browser), in under a minute.
test-fast: install
	$(BIN)/ruff check .
	$(BIN)/pytest -m "not model and not server and not browser and not bench"

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf var test-output
