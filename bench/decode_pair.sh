#!/usr/bin/env bash
# Decode-only pairing of qcoder and llama.cpp on a shared machine: ROUNDS rounds, each running
# `qcoder bench --skip-pp` and `llama-bench -p 0` back to back (alternating which goes first),
# with the load average logged before each. Prints one line per run; take medians yourself.
#   bench/decode_pair.sh MODEL_DIR GGUF [ROUNDS=3] [TOKENS=32] [THREADS=2] [QCODER=build/apps/qcoder]
#   LLAMA_BENCH=/tmp/llamacpp/build/bin/llama-bench (environment)
set -euo pipefail
model=$1 gguf=$2 rounds=${3:-3} n=${4:-32} t=${5:-2} qcoder=${6:-build/apps/qcoder}
llama=${LLAMA_BENCH:-/tmp/llamacpp/build/bin/llama-bench}
run_q() {
  echo "load $(cut -d' ' -f1 /proc/loadavg) qcoder: $("$qcoder" bench -m "$model" --skip-pp -r 1 -n "$n" -t "$t" 2>&1 | grep 'run 1' | sed 's/.*pp512 0 tok\/s, //')"
}
run_l() {
  echo "load $(cut -d' ' -f1 /proc/loadavg) llama.cpp: $("$llama" -m "$gguf" -p 0 -n "$n" -t "$t" -r 1 2>&1 | grep "tg$n" | awk -F'|' '{print $(NF-1)}') tok/s"
}
for ((r = 1; r <= rounds; ++r)); do
  if ((r % 2)); then run_q; run_l; else run_l; run_q; fi
done
