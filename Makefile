# qcoder — see README.md. `make demo` and `make test` work on a fresh Debian machine.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
VENV_PY := .venv/bin/python
DEMO_MODEL ?= tests/fixtures/models/q4_g64
# Set QCODER_SKIP_PEER_TESTS=1 to run without the reference venv (mlx-lm); the summary says so.
QCODER_SKIP_PEER_TESTS ?= 0
LIVE_FIXTURES := $(BUILD)/live-fixtures

FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 300

.PHONY: all deps venv build build-asan build-fuzz demo test test-asan test-tsan fuzz fuzz-smoke peer-fixtures fixtures bench clean

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
	$(MAKE) --no-print-directory test-tsan; \
	$(MAKE) --no-print-directory fuzz-smoke; \
	echo "== parity with mlx-lm (errors in sigma of the float64 logits; see docs/TESTING.md)"; \
	cat $(BUILD)/parity-report-*.txt; \
	echo "peer tests: $$peer"

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer (committed fixtures only).
test-asan: build-asan
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --test-dir $(ASAN_BUILD) -j $(JOBS) --output-on-failure

# Speed on the benchmark model (12 layers of 30B-A3B shape, MLX 4-bit g64, ~4.6 GB, random
# weights; generated once under BENCH_DIR, never in the repo). See docs/PERFORMANCE.md.
BENCH_DIR ?= /tmp/qcoder-bench
bench: build venv
	@test -f $(BENCH_DIR)/m30b12/config.json || $(VENV_PY) bench/make_bench_model.py --out $(BENCH_DIR)/m30b12
	@$(BUILD)/apps/qcoder bench -m $(BENCH_DIR)/m30b12

# The threaded parts (engine scheduler, HTTP server) under ThreadSanitizer.
test-tsan: deps
	@cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQCODER_TSAN=ON >/dev/null
	@cmake --build $(TSAN_BUILD) -j $(JOBS) --target engine_tests server_tests qcoder
	@TSAN_OPTIONS=halt_on_error=1 ctest --test-dir $(TSAN_BUILD) -R '^(Engine|KvPaging|PrefixCache|ChoiceStream|OpenAiParams|HttpServer|TextBackend)|server_py_openai_api' --output-on-failure

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
