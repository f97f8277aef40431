# The two commands a fresh clone needs: `make demo` and `make test`.
# Both create .venv from this project's own files (pyproject.toml) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck pytest slow bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

## demo: both emulators, seeded data, a full sync with progress bars and a summary
demo: $(STAMP)
	$(BIN)/crmbridge demo $(DEMO_ARGS)

## test: lint, type check and the whole default test suite (what .ci/run runs)
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## slow: the long suites (kill points, fuzzing)
slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

## bench: every benchmark, then docs/performance.md
bench: $(STAMP)
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
