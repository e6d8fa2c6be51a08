#!/usr/bin/env bash
# Creates the repo-local reference venv (.venv) with the pinned peer packages.
# Idempotent: does nothing when the installed set already matches requirements.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
req="$root/tests/reference/requirements.txt"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null; then
  echo "setup-venv: $python not found; install python3 and python3-venv" >&2
  exit 1
fi
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
"$venv/bin/python" -c "import mlx.core, mlx_lm, numpy" 
echo "$want" > "$stamp"
echo "setup-venv: reference venv ready at $venv" >&2
