#!/usr/bin/env bash
# Runs a tokenizer reference script (tests/reference/tokenizer_live_refs.py,
# scripts/gen_unicode_tables.py --check) with the repo's reference venv; ctest calls it.
#   tokenizer_peer.sh SOURCE_DIR SCRIPT [ARGS...]
# QCODER_SKIP_PEER_TESTS=1: says so and exits 77 (ctest reports the test as skipped). Otherwise a
# missing or outdated venv is a failure, not a skip.
set -euo pipefail
root=$1
shift
if [[ "${QCODER_SKIP_PEER_TESTS:-0}" == 1 ]]; then
  echo "SKIPPED (QCODER_SKIP_PEER_TESTS=1): Hugging Face tokenizers peer check not run"
  exit 77
fi
py="$root/.venv/bin/python"
if [[ ! -x $py ]]; then
  echo "tokenizer peer test: no reference venv at $root/.venv; run 'make venv' (or set QCODER_SKIP_PEER_TESTS=1)" >&2
  exit 1
fi
if ! "$py" -c "import tokenizers, unicodedataplus" 2>/dev/null; then
  echo "tokenizer peer test: $root/.venv lacks tokenizers/unicodedataplus (tests/reference/requirements.txt); run 'make venv'" >&2
  exit 1
fi
exec "$py" "$@"
