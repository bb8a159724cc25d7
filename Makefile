# Two commands for a newcomer: `make demo` and `make test`. Both bootstrap .venv idempotently.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench dashboard clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/medflow demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)  ## installs the peers; each benchmark is run on its own (minutes to an hour each)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	@echo "Benchmarks (see bench/README.md); run each with $(PY) bench/<name>.py --help"
	@ls bench/*.py

dashboard: $(STAMP)
	$(VENV)/bin/medflow server

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache demo-output .medflow
