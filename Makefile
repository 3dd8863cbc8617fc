# The two commands (see README): `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-slow test-sanitize test-no-extensions sanitize-build fuzz lint typecheck bench \
        system-deps clean

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
	$(BIN)/hadolint --failure-threshold warning Dockerfile

typecheck: $(STAMP)
	$(BIN)/mypy

# The whole suite, then the compiled row code under the sanitizers, then the row path and the
# export without it (each a few minutes at most; docs/row-path.md, "Testing the compiled code").
test: $(STAMP) system-deps lint typecheck
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory test-sanitize test-no-extensions

# tests/extension_switch/sitecustomize.py, in every Python process of a run (workers too):
# ROWCODE_EXTENSIONS=off makes the two extensions' import fail, =DIR loads the builds in DIR.
EXTENSION_SWITCH := PYTHONPATH=$(CURDIR)/tests/extension_switch ROWCODE_EXTENSIONS

# Both extensions built with AddressSanitizer and UndefinedBehaviorSanitizer (any undefined
# behaviour is fatal), in build/sanitize; CPython's own allocations through malloc, so that a
# read past the end of a bytes object lands in ASan's red zone. CPython is not built with
# ASan: its runtime is preloaded (GCC's libasan; Clang would need its own runtime's path).
# pytest captures Python's output only (--capture=sys), so that a sanitizer's report, written
# to the process's stderr as it aborts, reaches the terminal.
SANITIZE_DIR   := $(CURDIR)/build/sanitize
SANITIZE_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g
LIBASAN         = $(shell gcc -print-file-name=libasan.so)
SANITIZED       = $(EXTENSION_SWITCH)=$(SANITIZE_DIR)/lib LD_PRELOAD=$(LIBASAN) PYTHONMALLOC=malloc \
                  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
                  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The tests that call the compiled code: its own, the fuzz harness, malformed rows over TCP.
COMPILED_TESTS := tests/test_fuzz tests/test_tdsrows tests/test_xlsx/test_native_rows.py \
                  tests/test_server/test_protocol_errors.py
# The row path and the export, which must pass without the extensions too.
ROW_PATH_TESTS := tests/test_tdsrows tests/test_xlsx tests/test_fuzz tests/test_server/test_export.py \
                  tests/test_server/test_procedure_shapes.py tests/test_server/test_protocol_errors.py

sanitize-build: $(STAMP)
	@test -f "$(LIBASAN)" || { echo "no libasan.so from gcc: install gcc (Debian: gcc pulls libasan8)"; exit 1; }
	rm -rf $(SANITIZE_DIR)
	CFLAGS="$(SANITIZE_FLAGS)" LDFLAGS="-fsanitize=address,undefined" \
	    $(BIN)/python setup.py -q build_ext --build-lib $(SANITIZE_DIR)/lib --build-temp $(SANITIZE_DIR)/tmp
	$(SANITIZED) $(BIN)/python -c 'import tdsrows._rowscan as s, xlsx._rowxml as x; print("sanitized:", s.__file__, x.__file__)'

test-sanitize: sanitize-build
	$(SANITIZED) $(BIN)/python -m pytest --capture=sys $(COMPILED_TESTS)

test-no-extensions: $(STAMP)
	$(EXTENSION_SWITCH)=off $(BIN)/python -m pytest $(ROW_PATH_TESTS)

# The fuzz harness's long run, against the sanitizer build: FUZZ_EXAMPLES per test, a new
# random seed each run (printed with any failure; failures are kept in .hypothesis/ and tried
# first next time).
FUZZ_EXAMPLES ?= 20000
fuzz: sanitize-build
	$(SANITIZED) ROWCODE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest --capture=sys tests/test_fuzz \
	    --timeout=0 --hypothesis-show-statistics

test-slow: $(STAMP) system-deps
	$(BIN)/python -m pytest -m slow

bench: $(STAMP)
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis tdsrows/*.so xlsx/*.so
