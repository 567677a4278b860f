# margin-engine: `make demo` runs the guided scenario, `make test` the whole test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORE := $(VENV)/.installed-core

.PHONY: demo test lint fuzz bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# the demo needs only the engine's own dependencies; the tests install everything (service, simulator, checks)
$(CORE): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $(CORE)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $(CORE)

demo: $(CORE)
	$(BIN)/margin-engine demo

test: lint
	$(BIN)/python -m pytest

# the engine fuzz at full size: 40,000 random commands on each of 5 profiles (200,000 in all)
fuzz: $(STAMP)
	MARGIN_ENGINE_FUZZ_COMMANDS=40000 $(BIN)/python -m pytest -q -s -p no:cacheprovider tests/engine/test_engine_fuzz.py

# static checks: style and errors (ruff), types of the core packages (mypy, pyproject's
# [tool.mypy]), and the import layers of pyproject's [tool.importlinter]
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks alembic docs/screenshot.py docs/margin_table.py
	$(BIN)/ruff format --check src tests benchmarks alembic docs/screenshot.py docs/margin_table.py
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python benchmarks/greeks.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .hypothesis
