# The two commands (see README): `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-slow lint typecheck bench system-deps clean

# The virtualenv is rebuilt whenever the declared dependencies or the C extensions change (the
# editable install compiles tdsrows/_rowscan.c and xlsx/_rowxml.c in place).
$(STAMP): setup.cfg pyproject.toml setup.py tdsrows/_rowscan.c xlsx/_rowxml.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench,load]'
	touch $@

# OS packages the tests drive for real: curl, FreeTDS tsql, Debian's chromium.
system-deps:
	bash scripts/install-system-deps.sh

run: $(STAMP)
	$(BIN)/python -m scripts.run_stack

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) system-deps lint typecheck
	$(BIN)/python -m pytest

test-slow: $(STAMP) system-deps
	$(BIN)/python -m pytest -m slow

bench: $(STAMP)
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache tdsrows/*.so xlsx/*.so
