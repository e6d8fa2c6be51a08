#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD_DIR: replays its committed corpus (tests/fuzz/corpus/NAME),
# then fuzzes for SECONDS on a scratch copy so the committed corpus is not rewritten.
set -euo pipefail
build=$1
seconds=$2
root=$(cd "$(dirname "$0")/.." && pwd)
shopt -s nullglob
targets=("$build"/tests/fuzz/fuzz_*)
if ((${#targets[@]} == 0)); then
  echo "fuzz: no targets built" >&2
  exit 0
fi
for t in "${targets[@]}"; do
  name=${t##*/fuzz_}
  corpus="$root/tests/fuzz/corpus/$name"
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  [[ -d $corpus ]] && cp -r "$corpus"/. "$scratch"/
  echo "fuzz: $name: replaying $(ls "$scratch" | wc -l) inputs, then ${seconds}s" >&2
  "$t" -runs=0 "$scratch" 2>"$scratch.log" || { cat "$scratch.log" >&2; exit 1; }
  "$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 "$scratch" 2>"$scratch.log" ||
    { tail -50 "$scratch.log" >&2; exit 1; }
  tail -1 "$scratch.log" >&2
  rm -rf "$scratch" "$scratch.log"
  trap - EXIT
done
echo "fuzz: ${#targets[@]} targets passed" >&2
