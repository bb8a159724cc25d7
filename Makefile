# Two commands for a newcomer: `make demo` and `make test`. Both do their whole set-up, idempotently:
# Python 3.11 and .venv (make demo), plus the Debian packages and the validator environment the tests use
# (make test). Nothing is downloaded at run time.
PYTHON ?= $(shell command -v python3.11 2>/dev/null)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Independent judges run in their own environments, so their pins never constrain medflow's (ome-zarr-models
# pins pydantic<2.13, which Prefect's stack has moved past).
VALIDATORS := .venv-validators
VSTAMP     := $(VALIDATORS)/.installed
# Test files run on two worker processes (a file's tests stay together, so module fixtures are built once);
# many tests wait on servers and subprocesses, so two workers pay off even on two cores.
TEST_WORKERS ?= 2

.PHONY: demo test lint bench dashboard clean python system-deps validators

python:
	@test -n "$(PYTHON)" || { echo "medflow needs Python 3.11: python3.11 is not on PATH. Install it (Debian/Ubuntu: apt-get install python3.11 python3.11-venv) or run: make PYTHON=/path/to/python3.11 test" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "medflow needs Python 3.11; $(PYTHON) is $$($(PYTHON) -V 2>&1). Run: make PYTHON=/path/to/python3.11 test" >&2; exit 1; }
	@.ci/system-deps venv $(PYTHON)

$(STAMP): pyproject.toml | python
	@if [ -x $(PY) ] && ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then echo "$(VENV) is not Python 3.11: recreating it"; rm -rf $(VENV); fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(VSTAMP): tests/validators/requirements.txt | python
	test -x $(VALIDATORS)/bin/python || $(PYTHON) -m venv $(VALIDATORS)
	$(VALIDATORS)/bin/python -m pip install --quiet --upgrade pip
	$(VALIDATORS)/bin/python -m pip install --quiet -r tests/validators/requirements.txt
	touch $(VSTAMP)

validators: $(VSTAMP)

system-deps: python
	@.ci/system-deps tests $(PYTHON)

demo: $(STAMP)
	$(VENV)/bin/medflow demo

test: system-deps $(STAMP) $(VSTAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=15

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
	rm -rf $(VENV) $(VALIDATORS) .pytest_cache .ruff_cache demo-output .medflow
