# qcoder — see README.md. `make demo` and `make test` work on a fresh Debian machine.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
VENV_PY := .venv/bin/python
DEMO_MODEL ?= tests/fixtures/models/q4_g64
# Set QCODER_SKIP_PEER_TESTS=1 to run without the reference venv (mlx-lm); the summary says so.
QCODER_SKIP_PEER_TESTS ?= 0
LIVE_FIXTURES := $(BUILD)/live-fixtures

FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 300

.PHONY: all deps venv build build-asan build-fuzz demo test test-asan fuzz fuzz-smoke peer-fixtures fixtures clean

all: build

deps:
	@bash scripts/install-deps.sh

venv:
	@bash scripts/setup-venv.sh

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DQCODER_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

build-fuzz: deps
	@CXX=clang++-14 cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DQCODER_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)

# Replays each committed corpus, then fuzzes every target briefly (part of make test).
fuzz-smoke: build-fuzz
	@bash scripts/fuzz.sh $(FUZZ_BUILD) 10

# Long fuzzing runs: FUZZ_SECONDS per target.
fuzz: build-fuzz
	@bash scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

demo: build
	@bash scripts/demo.sh $(BUILD)/apps/qcoder $(DEMO_MODEL)

# Live peer fixtures: models too big to commit, built and run through mlx-lm at test time.
peer-fixtures: venv
	@$(VENV_PY) tests/reference/make_model_fixtures.py --only bigvocab --out $(LIVE_FIXTURES)

# Regenerates the committed parity fixtures with mlx-lm (deterministic; review the diff).
fixtures: venv
	@$(VENV_PY) tests/reference/make_model_fixtures.py --out tests/fixtures/models

test: build
	@set -e; \
	if [[ "$(QCODER_SKIP_PEER_TESTS)" == 1 ]]; then \
	  peer="SKIPPED (QCODER_SKIP_PEER_TESTS=1): live mlx-lm fixtures not generated"; live=""; \
	else \
	  $(MAKE) --no-print-directory peer-fixtures || { echo "make test: the reference venv (mlx-lm) could not be created or run; set QCODER_SKIP_PEER_TESTS=1 to skip peer tests" >&2; exit 1; }; \
	  peer="ran (live mlx-lm fixtures in $(LIVE_FIXTURES))"; live="$(abspath $(LIVE_FIXTURES))"; \
	fi; \
	rm -f $(BUILD)/parity-report-*.txt; \
	QCODER_LIVE_FIXTURES="$$live" ctest --test-dir $(BUILD) -j $(JOBS) --output-on-failure; \
	$(MAKE) --no-print-directory test-asan; \
	$(MAKE) --no-print-directory fuzz-smoke; \
	echo "== parity with mlx-lm (errors in sigma of the float64 logits; see docs/TESTING.md)"; \
	cat $(BUILD)/parity-report-*.txt; \
	echo "peer tests: $$peer"

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer (committed fixtures only).
test-asan: build-asan
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --test-dir $(ASAN_BUILD) -j $(JOBS) --output-on-failure

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
