# alchemy-nb: the two set-up commands are `make demo` and `make test`.
# Both create .venv on first use and reinstall only when pyproject.toml changes.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test check lint typecheck format bench clean help system

help:
	@echo "make demo   - set up .venv and run the example app (plan, deploy, no-op, read, destroy)"
	@echo "make test   - set up .venv with the test extras and run the whole suite"
	@echo "make check  - ruff (lint + format check) and mypy (strict)"
	@echo "make bench  - benchmarks beside their peers (Alchemy on bun, Miniflare, papermill) and the state stores"
	@echo "make clean  - remove .venv and caches"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/python scripts/demo.py

system:
	@scripts/system_deps.sh

test: $(STAMP) system
	$(BIN)/python -m pytest -n auto --dist loadgroup

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_fs.py
	$(BIN)/python benchmarks/bench_local.py
	$(BIN)/python benchmarks/bench_workers.py
	$(BIN)/python benchmarks/bench_runbook.py
	$(BIN)/python benchmarks/bench_state.py
	$(BIN)/python benchmarks/bench_cloudflare.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
