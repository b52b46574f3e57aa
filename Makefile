# The facility's commands. Each target installs what it needs and is safe to run twice.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FACILITY := $(VENV)/bin/facility
STAMP := $(VENV)/.installed
SAMPLE := data/sample
ANALYSES := ds stop dt
RUN_OUT := output/run
PYTEST_ARGS ?=

.PHONY: install run test test-fast lint format bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $@

install: $(STAMP)

# Until the hub lands: a small sample dataset per analysis (made once), then all three
# analyses on a Dask LocalCluster, with a printed summary and plots under output/run/.
$(SAMPLE)/%/truth.json: $(STAMP)
	$(FACILITY) generate $* --output $(SAMPLE)/$* --files 2 --events-per-file 100000

run: $(foreach a,$(ANALYSES),$(SAMPLE)/$(a)/truth.json)
	@for a in $(ANALYSES); do \
	  $(FACILITY) analyze $$a $(SAMPLE)/$$a --executor local:2 --plots $(RUN_OUT)/$$a || exit 1; \
	done

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The whole suite. pytest's exit code 5 (nothing collected) fails the target like any other.
test: lint
	$(PY) -m pytest -ra $(PYTEST_ARGS)

# Inner loop: everything but the multi-process and large-data tests.
test-fast: lint
	$(PY) -m pytest -ra -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) output .pytest_cache .ruff_cache
