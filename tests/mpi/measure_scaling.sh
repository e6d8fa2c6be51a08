#!/usr/bin/env bash
# Measures decode on one machine: one process vs `mpirun -np 2` pipeline and expert plans, on
# a random-weight model of Qwen3-Coder-30B-A3B's layer shape (docs/DISTRIBUTED.md, "Measured").
#   tests/mpi/measure_scaling.sh QCODER MAKE_SYNTHETIC_MODEL [MODEL_DIR] [REPEATS]
# Per configuration: decode ms/token = (run(-n 33) - run(-n 1)) / 32 in wall time and in CPU
# time (summed over ranks), over REPEATS runs taken in turn (the machines are shared and
# noisy); then each rank's split of a forward step into compute CPU and waiting on the other
# ranks (QCODER_LOG=debug).
set -euo pipefail
qcoder=$1
maker=$2
model=${3:-/tmp/qcoder-synthetic-30b-shape}
repeats=${4:-5}
mpirun=(mpirun --allow-run-as-root --oversubscribe)
if [[ ! -f $model/config.json ]]; then
  "$maker" "$model" --layers 6 --hidden 2048 --heads 32 --kv-heads 4 --head-dim 128 \
      --experts 128 --top-k 8 --moe-inter 768 --vocab 32768 >&2
fi
ids=11,12,13,14,15,16,17,18
declare -A cmd=(
  [single_t2]="$qcoder generate -m $model --ids $ids --json -t 2"
  [single_t1]="$qcoder generate -m $model --ids $ids --json -t 1"
  [pipeline_np2_t1]="${mpirun[*]} -np 2 $qcoder generate -m $model --ids $ids --json -t 1 --parallel pipeline"
  [expert_np2_t1]="${mpirun[*]} -np 2 $qcoder generate -m $model --ids $ids --json -t 1 --parallel expert"
)
order=(single_t2 single_t1 pipeline_np2_t1 expert_np2_t1)
declare -A walls cpus
measure() {  # "wall_seconds cpu_seconds" of one run (CPU: every process, ranks included)
  local f
  f=$(mktemp)
  eval "/usr/bin/time -f '%e %U %S' -o $f $1" >/dev/null 2>&1
  awk '{print $1, $2 + $3}' "$f"
  rm -f "$f"
}
for ((r = 0; r < repeats; r++)); do
  for name in "${order[@]}"; do
    read -r w1 c1 <<<"$(measure "${cmd[$name]} -n 1")"
    read -r w33 c33 <<<"$(measure "${cmd[$name]} -n 33")"
    walls[$name]+="$(echo "($w33 - $w1) * 1000 / 32" | bc -l) "
    cpus[$name]+="$(echo "($c33 - $c1) * 1000 / 32" | bc -l) "
  done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
minimum() { tr ' ' '\n' <<<"$1" | grep . | sort -g | head -1; }
echo "decode ms/token = (run with -n 33 - run with -n 1) / 32; $repeats runs each; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for name in "${order[@]}"; do
  printf '%-18s wall median %7.1f min %7.1f ms/token | CPU (all ranks) median %7.1f ms/token\n' "$name" \
    "$(median "${walls[$name]}")" "$(minimum "${walls[$name]}")" "$(median "${cpus[$name]}")"
done
for name in pipeline_np2_t1 expert_np2_t1; do
  echo "== $name, -n 33 (per forward step, prefill included):"
  QCODER_LOG=debug eval "${cmd[$name]} -n 33" 2>&1 >/dev/null | grep -E "forward steps" | sed 's/^qcoder debug: /   /'
done
