#!/usr/bin/env bash
# Runs one server test file with the reference venv's pytest against the qcoder binary given.
# Exits 77 (ctest: skipped) when the venv or its openai client is missing
# (QCODER_SKIP_PEER_TESTS=1 runs, or a machine without the venv).
# usage: run_pytest.sh QCODER_BIN TEST_FILE [pytest args...]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
py="$root/.venv/bin/python"
bin=$1 file=$2
shift 2
if [[ ! -x $py ]] || ! "$py" -c "import openai, pytest, numpy" 2>/dev/null; then
  echo "SKIPPED: $root/.venv has no openai/pytest/numpy (run scripts/setup-venv.sh)"
  exit 77
fi
export QCODER_BIN=$bin
export QCODER_TINY_MODEL="$(dirname "$(dirname "$bin")")/tiny-qwen"
cd "$root/tests/server"
exec "$py" -m pytest -q -p no:cacheprovider "$file" "$@"
