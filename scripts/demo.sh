#!/usr/bin/env bash
# The main job on the model bundled in the repo: inspect it, then generate greedily.
set -euo pipefail
qcoder=$1
model=$2
cat <<MSG
== qcoder demo on $model
   This bundled model has RANDOM weights (a tiny qwen3_moe built with mlx-lm and quantized by
   MLX to 4 bits), so its tokens are meaningless; it shows the loader, the forward pass and
   generation end to end. mlx-lm's greedy continuation of the same prompt is in the fixture's
   reference.safetensors, and 'make test' checks qcoder against it.
MSG
echo "== qcoder inspect -m $model"
"$qcoder" inspect -m "$model"
echo "== qcoder generate -m $model --ids 1,2,3,4,5 -n 32 --json"
"$qcoder" generate -m "$model" --ids 1,2,3,4,5 -n 32 --json
